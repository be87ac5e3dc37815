"""One agent per training seed, tested on shared test episodes, summarised as mean and 95% t interval.

``gradfolio hedge train --seeds "0 1 2 3 4"`` trains the configured agent once per seed, serially,
each in its own run folder ``<out>/seed_<s>`` (resumable on its own), and evaluates every agent
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

import pandas as pd

from gradfolio.experiments.hedging.train import (
    HedgeTrainingConfig,
    evaluate_agent,
    train_agent,
)
from gradfolio.experiments.outputs import markdown_table, write_csv
from gradfolio.io import atomic_write_text
from gradfolio.progress import Progress
from gradfolio.stats.seeds import LEVEL, check_seeds, format_summary, paired_differences, seed_summary, t_interval
from gradfolio.tracking import Tracker

def train_seeds(
    config: HedgeTrainingConfig,
    seeds: Sequence[int],
    out: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    tracker: Tracker | None = None,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Train and test one agent per seed (serially); write the per-seed and summary tables.

    Parameters
    ----------
    config
        The run's settings; ``trainer.seed`` is replaced by each seed.
    seeds
        Two or more distinct training seeds (``>= 0``).
    out
        Output folder (default ``config.output_dir``); seed ``s`` trains in ``out/seed_<s>``.
    resume
        Continue each seed's run from its checkpoint (a seed already finished is trained no further).

    Returns
    -------
    ``(per_seed, summary, out)``: the long table (``seed``, ``strategy``, metrics), the
    :func:`seed_summary` and the folder.
    """
    seeds = check_seeds(seeds)
    root = Path(out or config.output_dir)
    tables = []
    for seed in seeds:
        cfg = config.model_copy(update={"trainer": config.trainer.model_copy(update={"seed": seed})})
        cfg = HedgeTrainingConfig.model_validate(cfg.model_dump(mode="json"))
        agent, run_dir = train_agent(cfg, root / f"seed_{seed}", resume=resume, tracker=tracker, progress=progress)
        table, _ = evaluate_agent(agent, cfg, run_dir)
        tables.append(table.reset_index().assign(seed=seed))
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
    return per_seed, summary, root


__all__ = ["LEVEL", "t_interval", "seed_summary", "paired_differences", "format_summary", "train_seeds"]
