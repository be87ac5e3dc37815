"""Hyperparameter search on the CPCV objective (``gradfolio tune --config FILE``), deflated for every trial.

An Optuna study (seeded TPE or random sampler) proposes, per trial, a learning rate
(log-uniform in ``space.lr``), a loss (``space.loss``) and a network (``space.network``, with
its parameters from ``space.network_params``); the trial's objective is the mean annualized
out-of-sample Sharpe ratio of the network over every CPCV path and seed of ``base.cv`` /
``base.seeds`` (:func:`gradfolio.experiments.backtest.cv.run_cv`, the network only). Each trial
runs in ``<out>/trials/trial-<i>/`` through :func:`~gradfolio.experiments.distributed.run_tasks`,
its tasks checkpointed by their fingerprints, so a killed or repeated search reads finished
tasks back (the seeded sampler proposes the same trials again).

The best trial's Sharpe ratio is then deflated for the number of trials: each trial's daily
out-of-sample series is the mean over its paths and seeds (all paths cover the same days), and
the deflated Sharpe ratio (:func:`gradfolio.stats.deflated_sharpe_ratio`) of the best one uses
``n_trials`` = the trials run and the variance of the trials' per-period Sharpe ratios. Outputs,
atomically, in ``out``: ``tune.json`` (every trial's parameters and objective; the best with its
PSR and DSR), ``trials.csv`` and ``best.yaml`` (the base config with the best parameters, ready
for ``gradfolio backtest --config``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.config_io import dump_config, load_config


class SearchSpace(BaseModel):
    """What a trial draws: ``lr`` log-uniform in ``(low, high)``; ``loss`` and ``network`` among names."""

    model_config = ConfigDict(extra="forbid")

    lr: tuple[float, float] | None = Field((1e-4, 1e-2), description="Log-uniform range of train.lr (null: fixed).")
    loss: list[str] | None = Field(None, min_length=1, description="Loss names (null: base.network.loss).")
    network: list[str] | None = Field(None, min_length=1, description="Network names (null: base.network.name).")
    network_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Parameters per network name (default: base.network.params for its "
        "own name, none for the others).")

    @model_validator(mode="after")
    def _range(self) -> SearchSpace:
        if self.lr is not None and not 0 < self.lr[0] < self.lr[1]:
            raise ValueError(f"lr range {self.lr} must be 0 < low < high")
        return self


class TuneConfig(BaseModel):
    """A search: the base run (with a ``cv`` section), the space, the number of trials, the sampler."""

    model_config = ConfigDict(extra="forbid")

    base: BacktestConfig = Field(default_factory=BacktestConfig)
    space: SearchSpace = Field(default_factory=SearchSpace)
    n_trials: int = Field(10, ge=2, description="Trials (at least 2: the DSR needs the trials' variance).")
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = 0
    out: str = "runs/tune"

    @model_validator(mode="after")
    def _needs_cv(self) -> TuneConfig:
        if self.base.cv is None:
            raise ValueError("base.cv is required: the objective is the CPCV (or walk-forward) Sharpe")
        return self

    def trial_config(self, params: dict[str, Any]) -> BacktestConfig:
        """``base`` with the network alone (no benchmarks, no agents) and a trial's ``lr``, ``loss``, ``network``."""
        b = self.base
        name = params.get("network", b.network.name)
        net_params = self.space.network_params.get(name, b.network.params if name == b.network.name else {})
        network = b.network.model_copy(update={"enabled": True, "label": None, "name": name, "params": net_params,
                                               "loss": params.get("loss", b.network.loss),
                                               "loss_params": b.network.loss_params if "loss" not in params else {}})
        train = b.train.model_copy(update={"lr": params.get("lr", b.train.lr)})
        return b.model_copy(update={"network": network, "networks": None, "train": train, "benchmarks": [],
                                    "benchmark_params": {}, "agents": []})

    def check(self) -> None:
        """Every network and loss of the space resolved and validated before any trial (ConfigError names it)."""
        losses = self.space.loss or [self.base.network.loss]
        for name in self.space.network or [self.base.network.name]:
            for loss in losses:
                try:
                    self.trial_config({"network": name, "loss": loss}).check_references()
                except ConfigError as exc:
                    raise ConfigError(f"space (network {name!r}, loss {loss!r}): {exc}") from exc


def load_tune_config(path: str | os.PathLike[str]) -> TuneConfig:
    """Read a YAML/TOML :class:`TuneConfig` (ConfigError names the file and field)."""
    return load_config(TuneConfig, path)


def _suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if space.lr is not None:
        params["lr"] = trial.suggest_float("lr", space.lr[0], space.lr[1], log=True)
    if space.loss is not None:
        params["loss"] = trial.suggest_categorical("loss", space.loss)
    if space.network is not None:
        params["network"] = trial.suggest_categorical("network", space.network)
    return params


def trial_returns(folder: str | os.PathLike[str]) -> pd.Series:
    """A trial's daily out-of-sample returns: the mean over its CPCV paths and seeds (``cv_returns.parquet``)."""
    long = pd.read_parquet(Path(folder) / "cv_returns.parquet")
    return long.groupby("date")["return"].mean()


def run_tune(config: TuneConfig, out: str | os.PathLike[str] | None = None) -> tuple[pd.DataFrame, Path]:
    """Run the search and write ``tune.json``, ``trials.csv`` and ``best.yaml`` into ``out`` (default ``config.out``).

    Returns
    -------
    ``(trials, folder)``: one row per trial (``trial``, the drawn parameters, ``objective`` = mean path
    Sharpe, ``std`` over paths and seeds), and the output folder.
    """
    import optuna

    from gradfolio.experiments.backtest.cv import cv_plan, run_cv, seeds_of
    from gradfolio.experiments.backtest.build import load_returns
    from gradfolio.experiments.outputs import write_csv
    from gradfolio.io import atomic_write_json
    from gradfolio.stats import (
        deflated_sharpe_ratio,
        probabilistic_sharpe_ratio,
        sharpe_statistics,
    )

    config.check()
    folder = Path(out if out is not None else config.out)
    returns = load_returns(config.base)
    cv_plan(config.base, len(returns))
    seeds_of(config.base)
    folder.mkdir(parents=True, exist_ok=True)
    dump_config(config, folder / "tune.yaml")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=config.seed) if config.sampler == "tpe"
               else optuna.samplers.RandomSampler(seed=config.seed))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rows: list[dict[str, Any]] = []
    series: dict[int, pd.Series] = {}
    cv = config.base.cv
    assert cv is not None
    ray_started = False
    if cv.executor == "ray":  # one Ray for every trial
        import ray

        if not ray.is_initialized():
            ray.init(address=cv.address, num_cpus=None if cv.address else cv.num_cpus, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
            ray_started = True
    try:
        for i in range(config.n_trials):
            trial = study.ask()
            params = _suggest(trial, config.space)
            cfg = config.trial_config(params)
            trial_dir = folder / "trials" / f"trial-{i}"
            table = run_cv(cfg, returns, trial_dir, {"net": cfg}, {})
            objective = float(table["sharpe"].mean())
            study.tell(trial, objective)
            series[i] = trial_returns(trial_dir)
            rows.append({"trial": i, **params, "objective": objective,
                         "std": float(table["sharpe"].std(ddof=1)) if len(table) > 1 else 0.0})
    finally:
        if ray_started:
            import ray

            ray.shutdown()
    trials = pd.DataFrame(rows)
    frame = pd.DataFrame(series).dropna()
    st = sharpe_statistics(frame)
    var = float(st["sharpe"].var(ddof=1))
    best = int(trials["objective"].idxmax())
    b = st.iloc[best]  # columns in trial order
    dsr = float(deflated_sharpe_ratio(b["sharpe"], b["n_obs"], config.n_trials, var, b["skew"], b["kurtosis"]))
    psr = float(probabilistic_sharpe_ratio(b["sharpe"], b["n_obs"], b["skew"], b["kurtosis"]))
    best_params = {k: v for k, v in rows[best].items() if k not in ("trial", "objective", "std")}
    best_cfg = config.trial_config(best_params).model_copy(
        update={"benchmarks": config.base.benchmarks, "benchmark_params": config.base.benchmark_params})
    dump_config(best_cfg, folder / "best.yaml")
    write_csv(trials, folder / "trials.csv")
    atomic_write_json(folder / "tune.json", {
        "n_trials": config.n_trials, "sampler": config.sampler, "seed": config.seed,
        "objective": "mean annualized out-of-sample Sharpe over the CV paths and seeds",
        "trials": rows, "trial_sharpe_var": var, "n_obs": int(b["n_obs"]),
        "best": {"trial": best, "params": best_params, "objective": rows[best]["objective"], "psr": psr,
                 "dsr": dsr},
    })
    return trials, folder


__all__ = ["SearchSpace", "TuneConfig", "load_tune_config", "run_tune", "trial_returns"]
