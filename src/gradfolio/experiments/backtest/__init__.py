"""Walk-forward backtest runs: a :class:`BacktestConfig` file -> trained network + benchmarks -> run folder.

:mod:`~gradfolio.experiments.backtest.config` (typed config, ``demo_config``),
:mod:`~gradfolio.experiments.backtest.constraints` (the ``constraints:`` section and where it goes),
:mod:`~gradfolio.experiments.backtest.run` (:func:`run_backtest`) and
:mod:`~gradfolio.experiments.backtest.report` (HTML page, PNG figures, markdown metrics).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradfolio.experiments.lazy import lazy_exports

if TYPE_CHECKING:
    from gradfolio.experiments.backtest.config import (
        BacktestConfig,
        BacktestSettings,
        DataSettings,
        NetworkSettings,
        SplitSettings,
        StatsSettings,
        CVSettings,
        TrainSettings,
        demo_config,
        load_backtest_config,
    )
    from gradfolio.experiments.backtest.constraints import ConstraintSettings, GroupSettings, SectorSettings
    from gradfolio.experiments.backtest.tune import SearchSpace, TuneConfig, load_tune_config, run_tune
    from gradfolio.experiments.backtest.cv import CVPlan, cv_plan, read_cv, run_cv
    from gradfolio.experiments.backtest.evaluation import read_stats, stats_table, write_stats
    from gradfolio.experiments.backtest.report import metrics_html, report_html, write_pngs, write_report
    from gradfolio.experiments.backtest.build import (
        NetworkRun,
        benchmark_params,
        build_benchmarks,
        build_network,
        load_returns,
        network_params,
        refit_windows,
        retrain_schedule,
        split_windows,
        train_network,
    )
    from gradfolio.experiments.backtest.run import run_backtest, save_strategies

_EXPORTS: dict[str, str] = {
    "BacktestConfig": "config",
    "BacktestSettings": "config",
    "DataSettings": "config",
    "NetworkSettings": "config",
    "SplitSettings": "config",
    "TrainSettings": "config",
    "StatsSettings": "config",
    "CVSettings": "config",
    "SearchSpace": "tune",
    "TuneConfig": "tune",
    "load_tune_config": "tune",
    "run_tune": "tune",
    "CVPlan": "cv",
    "cv_plan": "cv",
    "run_cv": "cv",
    "read_cv": "cv",
    "stats_table": "evaluation",
    "write_stats": "evaluation",
    "read_stats": "evaluation",
    "demo_config": "config",
    "load_backtest_config": "config",
    "ConstraintSettings": "constraints",
    "GroupSettings": "constraints",
    "SectorSettings": "constraints",
    "metrics_html": "report",
    "report_html": "report",
    "write_pngs": "report",
    "write_report": "report",
    "NetworkRun": "build",
    "benchmark_params": "build",
    "network_params": "build",
    "save_strategies": "run",
    "build_benchmarks": "build",
    "build_network": "build",
    "load_returns": "build",
    "refit_windows": "build",
    "retrain_schedule": "build",
    "run_backtest": "run",
    "split_windows": "build",
    "train_network": "build",
}
"""Public name -> submodule that defines it; imported on first use, so that importing one submodule
(e.g. the light ``config`` from the command line) does not import the others (torch training, plotting)."""


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
