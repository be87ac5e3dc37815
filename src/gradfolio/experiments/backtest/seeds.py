"""A whole backtest per training seed, summarised as mean and 95% t interval over the seeds.

``gradfolio backtest --config c.yaml --seeds "0 1 2"`` (or ``experiment``) runs the configured
backtest once per seed, serially, each in its own run folder ``<out>/seed_<s>`` (resumable on
its own, a complete run folder with report, bundles and stats). The seed is the run's ``seed``:
it changes the networks' initialisation and minibatches, the reinforcement-learning agents
(their ``seed`` unless set), EIIE's batch draws, and the bootstrap of the statistics; the data,
windows, costs and test dates are the same for every seed, so the classical benchmarks give the
same numbers each time (half-width 0).

Summary (:func:`gradfolio.stats.seed_summary`): for every strategy and metric the mean over the
``n`` seeds and the half-width of the 95% Student t interval ``t_{0.975, n-1} s / sqrt(n)``.
:func:`gradfolio.stats.paired_differences` compares every strategy with the statistics'
benchmark (``stats.benchmark``, 1/N by default) seed by seed on the same test days: the t
interval of the per-seed difference of each metric, ``significant`` when it excludes 0.

That interval is over training randomness only. A strategy that does not depend on the seed
(the classical portfolios, a closed-form forecaster) has a zero-width interval that says
nothing about the test sample, so it is never called significant here (``seed_dependent``
false); and each run's own test of the Sharpe difference over its test days (Ledoit-Wolf HAC,
``stats.json``) is carried along as ``hac_p_max``, the largest p-value over the seeds. A claim
that a learned strategy beats 1/N needs both: significant over seeds and a small ``hac_p_max``.

Files in the output folder: ``seed_<s>/`` (each a full run folder), ``seeds.csv`` (one row per
seed and strategy), ``summary.csv`` / ``summary.md`` (mean and half-width per metric) and
``differences.csv`` (each strategy minus the benchmark).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.outputs import markdown_table, write_csv
from gradfolio.io import atomic_write_text
from gradfolio.progress import Progress
from gradfolio.stats.seeds import check_seeds, format_summary, paired_differences, seed_summary

METRICS = ("sharpe_ratio", "annualized_return", "annualized_volatility", "max_drawdown", "annual_turnover", "total_cost")
"""The metrics of :meth:`gradfolio.backtest.BacktestResult.metrics` summarised over seeds."""

COLUMNS = ("strategy", "baseline", "metric", "diff", "ci", "significant", "seed_dependent", "hac_p_max")
"""Columns of ``differences.csv``."""

Runner = Callable[[BacktestConfig, Path], pd.DataFrame]
"""``run(config, folder) -> metrics`` (one row per strategy, the columns of :data:`METRICS`)."""


def _run_one(config: BacktestConfig, folder: Path, progress: Progress | None) -> pd.DataFrame:
    from gradfolio.experiments.backtest.run import run_backtest

    _, result = run_backtest(config, folder, progress=progress)
    return result.metrics()


def hac_pvalues(folder: Path) -> dict[str, float]:
    """Per strategy, the p-value of its Sharpe difference to the benchmark in ``folder/stats.json`` (empty if none)."""
    path = folder / "stats.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    out = {}
    for name, row in data.get("strategies", {}).items():
        p = row.get("diff_pvalue")
        if isinstance(p, (int, float)):
            out[name] = float(p)
    return out


def backtest_seeds(
    config: BacktestConfig,
    seeds: Sequence[int],
    out: str | os.PathLike[str] | None = None,
    *,
    progress: Progress | None = None,
    runner: Runner | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Path]:
    """Run the backtest once per seed (serially) and write the per-seed, summary and difference tables.

    Parameters
    ----------
    config
        The run's settings; ``seed`` is replaced by each seed (``seeds`` of the CV is kept).
    seeds
        Two or more distinct seeds ``>= 0``.
    out
        Output folder (default ``config.out``); seed ``s`` runs in ``out/seed_<s>``, resumable.
    runner
        Replaces the backtest (tests): ``runner(config, folder) -> metrics``.

    Returns
    -------
    ``(per_seed, summary, differences, out)``: the long table (``seed``, ``strategy``, metrics),
    :func:`~gradfolio.stats.seed_summary`, :func:`~gradfolio.stats.paired_differences` of every
    strategy minus ``config.stats.benchmark`` (empty when it was not backtested), and the folder.
    """
    seeds = check_seeds(seeds)
    root = Path(out if out is not None else config.out)
    run = runner or (lambda cfg, folder: _run_one(cfg, folder, progress))
    tables = []
    pvalues: dict[str, list[float]] = {}
    for seed in seeds:
        cfg = config.model_copy(update={"seed": seed})
        metrics = run(cfg, root / f"seed_{seed}")
        for name, p in hac_pvalues(root / f"seed_{seed}").items():
            pvalues.setdefault(name, []).append(p)
        missing = [m for m in METRICS if m not in metrics.columns]
        if missing:
            raise ConfigError(f"backtest_seeds: the run's metrics lack {missing}; the runner must return {list(METRICS)}.")
        table = metrics[list(METRICS)].rename_axis("strategy").reset_index().assign(seed=seed)
        tables.append(table)
    per_seed = pd.concat(tables, ignore_index=True)[["seed", "strategy", *METRICS]]
    summary = seed_summary(per_seed)
    bench = config.stats.benchmark
    others = [s for s in per_seed["strategy"].unique() if s != bench]
    if bench in set(per_seed["strategy"]):
        parts = [paired_differences(per_seed, s, [bench], ("sharpe_ratio", "annualized_return")).assign(strategy=s)
                 for s in others]
        diffs = pd.concat(parts, ignore_index=True)
        spread = per_seed.groupby("strategy", sort=False)[["sharpe_ratio", "annualized_return"]].nunique().max(axis=1) > 1
        diffs["seed_dependent"] = diffs["strategy"].map(spread).astype(bool)
        diffs["significant"] = diffs["significant"] & diffs["seed_dependent"]
        diffs["hac_p_max"] = [max(pvalues[s]) if m == "sharpe_ratio" and len(pvalues.get(s, [])) == len(seeds) else math.nan
                              for s, m in zip(diffs["strategy"], diffs["metric"], strict=True)]
        diffs = diffs[list(COLUMNS)]
    else:
        diffs = pd.DataFrame(columns=list(COLUMNS))
    write_csv(per_seed, root / "seeds.csv", index=False)
    write_csv(summary, root / "summary.csv", index=True)
    write_csv(diffs, root / "differences.csv", index=False)
    text = (f"Mean ± half-width of the 95% Student t interval over {len(seeds)} seeds ({', '.join(map(str, seeds))}); "
            f"the same data, test days and costs for every seed (strategies that do not depend on the seed: "
            f"half-width 0).\n\n" + markdown_table(format_summary(summary)))
    if len(diffs):
        text += (f"\n\nEach strategy minus {bench}, paired by seed on the same test days (significant: the strategy "
                 "depends on the seed and the 95% t interval over seeds excludes 0; hac_p_max: the largest p-value "
                 "over the seeds of each run's own HAC test of the Sharpe difference over its test days, stats.md):"
                 "\n\n" + markdown_table(diffs.set_index(["strategy", "metric"]).drop(columns="baseline")))
    atomic_write_text(root / "summary.md", text)
    return per_seed, summary, diffs, root


__all__ = ["METRICS", "COLUMNS", "Runner", "hac_pvalues", "backtest_seeds"]
