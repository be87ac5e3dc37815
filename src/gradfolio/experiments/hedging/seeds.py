"""One agent per training seed, tested on shared test episodes, summarised as mean and 95% t interval.

``gradfolio hedge train --seeds "0 1 2 3 4"`` trains the configured agent once per seed, each in
its own run folder ``<out>/seed_<s>`` (resumable on its own), as one Ray task per seed like the
sweep (``--num-cpus``, ``--address``; ``--serial`` in the calling process), and evaluates every agent
and the baselines on the same test episodes (``evaluation.n_episodes`` test seeds
``evaluation.seed ..``, ``evaluation.n_paths`` paths each). The seed changes the networks'
initialisation, the exploration noise, the minibatches and the training episodes
(:class:`~gradfolio.hedging.rl.Trainer`); the test episodes are the same for every seed.

Summary (:func:`seed_summary`): for every strategy and metric, the mean over the ``n`` training
seeds and the half-width of a **95% Student t interval** ``t_{0.975, n-1} s / sqrt(n)``
(``s`` the sample standard deviation over seeds). The baselines do not depend on the training
seed, so their half-width is 0. :func:`paired_differences` compares the agent with each
baseline seed by seed (the same test paths): the t interval of the per-seed difference, and
``significant`` when it excludes 0. With 3 to 5 seeds the t quantile is large (4.30 for n = 3,
2.78 for n = 5): only clear gaps are called significant.

Files in the output folder: ``seed_<s>/`` (each a full run folder), ``seeds.csv`` (one row per
seed and strategy), ``summary.csv`` / ``summary.md`` (mean and half-width per metric) and
``differences.csv`` / in ``summary.md`` (agent minus each baseline).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from gradfolio.errors import ConfigError
from gradfolio.experiments.distributed import Executor, Job, run_tasks
from gradfolio.experiments.hedging.train import (
    HedgeTrainingConfig,
    evaluate_agent,
    seeded,
    train_agent,
)
from gradfolio.experiments.outputs import markdown_table, write_csv
from gradfolio.hedging.rl.training import CHECKPOINT_NAME
from gradfolio.io import atomic_write_text
from gradfolio.progress import Progress
from gradfolio.stats.seeds import LEVEL, check_seeds, format_summary, paired_differences, seed_summary, t_interval
from gradfolio.tracking import Tracker


def _train_and_test(config: HedgeTrainingConfig, folder: Path, tracker: Tracker | None = None,
                    progress: Progress | None = None) -> pd.DataFrame:
    """Train one seed in ``folder`` (resuming from its checkpoint when there is one), test it; the test table."""
    agent, run_dir = train_agent(config, folder, resume=(folder / CHECKPOINT_NAME).is_file(), tracker=tracker,
                                 progress=progress)
    table, _ = evaluate_agent(agent, config, run_dir)
    return table


def run_seed(config: dict[str, Any], run_dir: str) -> dict[str, list[Any]]:
    """Train one seed in ``run_dir`` (resuming from its ``checkpoint.pt`` when there is one) and test
    it; the test table as ``{"columns": [...], "rows": [[strategy, metric, ...], ...]}`` (lists keep
    the column order through ``result.json``).

    The job function of :func:`train_seeds` through Ray (module level, so Ray can ship it).
    """
    flat = _train_and_test(HedgeTrainingConfig.model_validate(config), Path(run_dir)).reset_index()
    return {"columns": [str(c) for c in flat.columns],
            "rows": [[str(row[0]), *map(float, row[1:])] for row in flat.itertuples(index=False)]}


def train_seeds(
    config: HedgeTrainingConfig,
    seeds: Sequence[int],
    out: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    executor: Executor = "ray",
    num_cpus: int | None = None,
    address: str | None = None,
    tracker: Tracker | None = None,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Train and test one agent per seed (in parallel through Ray, or serially); write the tables.

    Parameters
    ----------
    config
        The run's settings; ``trainer.seed`` is replaced by each seed. Each seed trains on
        ``trainer.threads`` intra-op threads (default 1) whichever the executor, so a seed's row
        is the same through Ray and serially (``tests/experiments/hedging/test_seeds.py``).
    seeds
        Two or more distinct training seeds (``>= 0``).
    out
        Output folder (default ``config.output_dir``); seed ``s`` trains in ``out/seed_<s>``.
    resume
        Continue the seeds whose folder has a checkpoint (a seed already finished is trained no
        further unless ``trainer.n_episodes`` grew) and start the others. Without it, a seed
        folder that holds a checkpoint is an error (nothing is overwritten).
    executor
        ``"ray"``: one Ray task per seed (``trainer.threads`` CPUs each) on a local Ray of
        ``num_cpus`` CPUs or the cluster at ``address``; a finished seed (its ``result.json`` for
        the same settings) is read back. ``"serial"``: one after the other in this process, with
        ``progress`` after every episode and ``tracker`` receiving every seed's training metrics.
    tracker
        Receives the summary (``seeds.<strategy>.<metric>`` means) and the folder in both modes.

    Returns
    -------
    ``(per_seed, summary, out)``: the long table (``seed``, ``strategy``, metrics), the
    :func:`seed_summary` and the folder.
    """
    seeds = check_seeds(seeds)
    if executor not in ("ray", "serial"):
        raise ConfigError(f"train_seeds: executor={executor!r}; use 'ray' or 'serial'.")
    root = Path(out or config.output_dir)
    folders = [root / f"seed_{seed}" for seed in seeds]
    if not resume:
        for folder in folders:
            if (folder / CHECKPOINT_NAME).exists():
                raise ConfigError(f"{folder / CHECKPOINT_NAME} exists; pass --resume to continue the seeds or choose a new "
                                  "--out folder.")
    configs = [seeded(config, seed) for seed in seeds]
    if executor == "serial":
        tables = [_train_and_test(cfg, folder, tracker, progress).reset_index().assign(seed=seed)
                  for seed, cfg, folder in zip(seeds, configs, folders, strict=True)]
    else:
        jobs = [Job(str(folder), cfg.model_dump(mode="json")) for cfg, folder in zip(configs, folders, strict=True)]
        rows = run_tasks(run_seed, jobs, executor="ray", num_cpus=num_cpus, address=address,
                         threads_per_task=config.trainer.threads or 1, root=root, clear_stale=False)
        tables = [pd.DataFrame(r["rows"], columns=r["columns"]).assign(seed=seed) for seed, r in zip(seeds, rows, strict=True)]
    per_seed = pd.concat(tables, ignore_index=True)
    per_seed = per_seed[["seed", "strategy", *[c for c in per_seed.columns if c not in ("seed", "strategy")]]]
    summary = seed_summary(per_seed)
    diffs = paired_differences(per_seed, config.agent_name, list(config.evaluation.strategies))
    write_csv(per_seed, root / "seeds.csv", index=False)
    write_csv(summary, root / "summary.csv", index=True)
    write_csv(diffs, root / "differences.csv", index=False)
    n = len(seeds)
    text = (f"Mean ± half-width of the 95% Student t interval over {n} training seeds ({', '.join(map(str, seeds))}); "
            f"test: {config.evaluation.n_episodes} episode(s) x {config.evaluation.n_paths} paths from seed "
            f"{config.evaluation.seed}, the same for every seed (baselines: half-width 0).\n\n"
            + markdown_table(format_summary(summary))
            + f"\n\n{config.agent_name} minus each baseline, paired by seed (significant: the 95% t interval excludes 0):\n\n"
            + markdown_table(diffs.set_index(["baseline", "metric"])))
    atomic_write_text(root / "summary.md", text)
    if tracker is not None:
        metrics = [c for c in summary.columns if not c.endswith("_ci") and c != "n_seeds"]
        tracker.log_metrics({f"seeds.{s}.{m}": float(summary.loc[s, m]) for s in summary.index for m in metrics})
        tracker.log_artifact(root)
    return per_seed, summary, root


__all__ = ["LEVEL", "t_interval", "seed_summary", "paired_differences", "format_summary", "run_seed", "train_seeds"]
