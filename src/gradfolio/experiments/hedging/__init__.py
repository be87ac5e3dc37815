"""Hedging runs: config files -> baselines, trained agents and sweeps -> run folders.

:mod:`~gradfolio.experiments.hedging.config` (:class:`HedgingConfig`, :class:`EvaluationConfig`,
:class:`TrainerConfig`),
:mod:`~gradfolio.experiments.hedging.baselines` (:func:`run_baselines`),
:mod:`~gradfolio.experiments.hedging.train` (build a trainer from a config; train / load / evaluate a
distributional agent),
:mod:`~gradfolio.experiments.hedging.seeds` (one agent per training seed, mean and 95% t interval),
:mod:`~gradfolio.experiments.hedging.sweep` (the paper's grids through Ray) and
:mod:`~gradfolio.experiments.hedging.report` (P&L table, histograms, run folder).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradfolio.experiments.lazy import lazy_exports

if TYPE_CHECKING:
    from gradfolio.experiments.hedging.baselines import run_baselines
    from gradfolio.experiments.hedging.config import EvaluationConfig, HedgingConfig, TrainerConfig, load_hedging_config
    from gradfolio.experiments.hedging.report import histogram_png, pnl_frame, report_html, write_hedge_run
    from gradfolio.experiments.hedging.sweep import (
        PAPER_EXPERIMENTS,
        SweepConfig,
        apply_overrides,
        experiment_figure,
        grid_points,
        load_sweep_config,
        results_table,
        run_point,
        run_sweep,
        seed_summary_table,
        seeds_table,
        write_results,
    )
    from gradfolio.experiments.hedging.seeds import paired_differences, seed_summary, t_interval, train_seeds
    from gradfolio.experiments.hedging.train import (
        AGENT_FILE,
        HedgeTrainingConfig,
        build_trainer,
        evaluate_agent,
        load_agent,
        load_training_config,
        run_params,
        train_agent,
    )

_EXPORTS: dict[str, str] = {
    "run_baselines": "baselines",
    "EvaluationConfig": "config",
    "HedgingConfig": "config",
    "TrainerConfig": "config",
    "load_hedging_config": "config",
    "histogram_png": "report",
    "pnl_frame": "report",
    "report_html": "report",
    "write_hedge_run": "report",
    "PAPER_EXPERIMENTS": "sweep",
    "SweepConfig": "sweep",
    "apply_overrides": "sweep",
    "experiment_figure": "sweep",
    "grid_points": "sweep",
    "load_sweep_config": "sweep",
    "results_table": "sweep",
    "run_point": "sweep",
    "run_sweep": "sweep",
    "seeds_table": "sweep",
    "seed_summary_table": "sweep",
    "write_results": "sweep",
    "train_seeds": "seeds",
    "seed_summary": "seeds",
    "paired_differences": "seeds",
    "t_interval": "seeds",
    "AGENT_FILE": "train",
    "HedgeTrainingConfig": "train",
    "build_trainer": "train",
    "evaluate_agent": "train",
    "load_agent": "train",
    "load_training_config": "train",
    "run_params": "train",
    "train_agent": "train",
}
"""Public name -> submodule that defines it; imported on first use, so that importing one submodule
(e.g. the light ``config`` from the command line) does not import the others (torch training, plotting)."""


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = list(_EXPORTS)
