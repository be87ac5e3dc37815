"""Run the classical hedging baselines from a :class:`HedgingConfig` (what ``gradfolio hedge baselines`` calls)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from gradfolio.experiments.config_io import flatten_params
from gradfolio.experiments.hedging.config import HedgingConfig
from gradfolio.experiments.hedging.report import write_hedge_run
from gradfolio.experiments.run_folder import check_run_folder
from gradfolio.hedging.baselines import baseline_policies
from gradfolio.hedging.evaluation import evaluate_policies, metrics_table
from gradfolio.tracking import NullTracker


def run_baselines(
    config: HedgingConfig,
    out_dir: str | os.PathLike[str] | None = None,
    tracker: NullTracker | None = None,
) -> tuple[pd.DataFrame, Path]:
    """Evaluate the configured baselines on the same episodes and write the run folder.

    Parameters
    ----------
    config
        Environment and evaluation settings.
    out_dir
        Run folder (default ``config.output_dir``).
    tracker
        Optional MLflow tracker; receives the flattened config and ``<strategy>.<metric>`` metrics.

    Returns
    -------
    ``(table, run_dir)``: the metrics table (one row per strategy) and the folder written.
    """
    check_run_folder(out_dir or config.output_dir, "hedge")  # before the evaluation's work
    ev = config.evaluation
    env = ev.make_env(config.env)
    results = evaluate_policies(env, baseline_policies(env, ev.strategies), ev.n_episodes, ev.seed)
    table = metrics_table(results, ev.level, ev.risk_aversion)
    run_dir = write_hedge_run(out_dir or config.output_dir, config, table, results, title="Hedging baselines")
    if tracker is not None:
        tracker.log_params(flatten_params(config.model_dump(mode="json")))
        tracker.log_metrics({f"{s}.{m}": v for s, row in table.to_dict(orient="index").items() for m, v in row.items()})
        tracker.log_artifact(run_dir)
    return table, run_dir


__all__ = ["run_baselines"]
