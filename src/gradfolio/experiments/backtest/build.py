"""Building blocks of a backtest run, shared by the run itself (:mod:`.run`) and its
cross-validation (:mod:`.cv`): the returns of the configured data, purged splits, the network
and its loss from the config, its training (checkpointed, resumable) and refits, the classical
benchmarks from the config (through :data:`gradfolio.allocation.classical.PORTFOLIOS`), and the
parameters their saved bundles hold.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gradfolio.allocation import Loss, Trainer, make_loss, make_network
from gradfolio.allocation.classical import PORTFOLIOS, default_benchmarks
from gradfolio.allocation.strategy import (
    json_params,
)
from gradfolio.backtest import (
    RetrainSchedule,
    Strategy,
)
from gradfolio.data import Windows, load_prices, make_windows, time_split, to_returns
from gradfolio.errors import ConfigError, DataError
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.backtest.constraints import (
    BOUNDS_ONLY,
    constrained_benchmarks,
    constrained_network_params,
    unconstrained_benchmarks,
)
from gradfolio.progress import Progress
from gradfolio.seeding import resolve_device
from gradfolio.tracking import NullTracker, Tracker


def benchmark_params(config: BacktestConfig, assets: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Keyword arguments of each classical portfolio named in ``config.benchmarks`` (``["all"]``: every one).

    ``returns_kind`` is the data's kind and ``seed`` (for portfolios that take one) the run's seed,
    unless ``benchmark_params`` sets them; with a ``constraints`` section, every benchmark that takes
    constraints gets them (resolved against ``assets``, the data's columns, when given; see
    :func:`~gradfolio.experiments.backtest.config.constrained_benchmarks`). These are the parameters
    saved in each benchmark's bundle. Names and parameters are checked against
    :data:`gradfolio.allocation.classical.PORTFOLIOS`.
    """
    config.check_references()
    names = default_benchmarks() if config.benchmarks == ["all"] else config.benchmarks
    constrained = constrained_benchmarks(config, assets)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        params: dict[str, Any] = {"returns_kind": config.data.kind, **config.benchmark_params.get(name, {})}
        if name in constrained:
            params["constraints"] = constrained[name]
        if "seed" in PORTFOLIOS.params_model(name).model_fields:
            params.setdefault("seed", config.seed)
        out[name] = json_params(params, f"benchmark_params.{name}")
    return out


def build_benchmarks(config: BacktestConfig, assets: list[str] | None = None) -> dict[str, Strategy]:
    """The classical portfolios named in ``config.benchmarks`` (``["all"]``: every one), built through
    :data:`~gradfolio.allocation.classical.PORTFOLIOS` with :func:`benchmark_params`.

    With a ``constraints`` section, the benchmarks that cannot apply (all of) them are named in a
    warning (:func:`~gradfolio.experiments.backtest.config.unconstrained_benchmarks`).
    """
    loose = unconstrained_benchmarks(config)
    ignored = [n for n in loose if n not in BOUNDS_ONLY]
    partial = [n for n in loose if n in BOUNDS_ONLY]
    if ignored:
        warnings.warn(
            f"constraints: the benchmarks {ignored} are not convex problems and run without the constraints "
            "(the report lists them as unconstrained).",
            stacklevel=2,
        )
    if partial:
        warnings.warn(
            f"constraints: {partial} apply only the per-asset bounds (recursive bisection knows no groups, sectors "
            "or leverage, as skfolio's HRP); the report lists them as unconstrained.",
            stacklevel=2,
        )
    return {
        name: PORTFOLIOS.build(name, where=f"benchmark_params.{name}", **params)
        for name, params in benchmark_params(config, assets).items()
    }


def network_params(config: BacktestConfig, assets: list[str] | None = None) -> dict[str, Any]:
    """The network's keyword parameters as saved in its bundle (``network.params`` without ``seed``, with the
    ``constraints`` section in its convex layer's parameters, resolved against ``assets`` when given)."""
    return json_params(constrained_network_params(config, assets), "network.params")


def load_returns(config: BacktestConfig) -> pd.DataFrame:
    """Simple returns of the configured source, dates and assets."""
    prices = load_prices(config.data.source)
    if config.data.start is not None or config.data.end is not None:
        start, end = (None if d is None else pd.Timestamp(d) for d in (config.data.start, config.data.end))
        prices = prices.loc[start:end]
    if config.data.assets is not None:
        missing = [a for a in config.data.assets if a not in prices.columns]
        if missing:
            raise ConfigError(
                f"data.assets: {missing} not in {config.data.source}; available: {list(prices.columns)}."
            )
        prices = prices[config.data.assets]
    if prices.shape[1] < 2:
        raise DataError(
            f"data: {config.data.source} holds {prices.shape[1]} asset column(s); a portfolio needs at least 2, "
            "give a price table with more assets."
        )
    if len(prices) < 2:
        raise DataError(f"data: no prices left in {config.data.source} between start and end; widen the dates.")
    return to_returns(prices, "simple")


def split_windows(config: BacktestConfig, returns: pd.DataFrame) -> tuple[Windows, Windows, Windows]:
    """Train / validation / test windows by time, purging ``(gap + horizon) // step`` windows between parts."""
    d = config.data
    windows = make_windows(
        returns, d.lookback, gap=d.gap, horizon=d.horizon, step=d.step, kind=d.kind, source=d.source
    )
    s = config.split
    if s.val_start is None or s.test_start is None:
        return time_split(windows, s.val_frac, s.test_frac)
    purge = (d.gap + d.horizon) // d.step
    i_val = int(windows.dates.searchsorted(pd.Timestamp(s.val_start)))
    i_test = int(windows.dates.searchsorted(pd.Timestamp(s.test_start)))
    parts = (
        windows.subset(0, max(0, i_val - purge)),
        windows.subset(i_val, max(i_val, i_test - purge)),
        windows.subset(i_test, len(windows)),
    )
    for name, part in zip(("train", "validation", "test"), parts, strict=True):
        if len(part) < 1:
            raise DataError(
                f"split: the {name} part is empty with val_start={s.val_start}, test_start={s.test_start} and a "
                f"purge of {purge} windows (windows from {windows.dates[0].date()} to {windows.dates[-1].date()}); "
                "move the dates."
            )
    return parts


@dataclass
class NetworkRun:
    """A trained allocation network ready for the walk-forward.

    Attributes
    ----------
    model
        The network ``X (B, C, L, N) -> w (B, N)`` with the best validation weights loaded.
    refit
        Hook ``refit(returns_up_to_t)`` that retrains it on a walk-forward retraining window.
    summary
        One line about the training (epochs, best validation loss) for the report.
    """

    model: torch.nn.Module
    refit: Callable[[pd.DataFrame], None]
    summary: str


class _Prefixed(NullTracker):
    """A tracker that forwards parameters and metrics to ``inner`` under ``task.`` keys."""

    def __init__(self, inner: Tracker, task: str) -> None:
        self.inner, self.task = inner, task

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.inner.log_params({f"{self.task}.{k}": v for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.inner.log_metrics({f"{self.task}.{k}": v for k, v in metrics.items()}, step=step)


def _renamed(progress: Progress | None, task: str) -> Progress | None:
    """``progress`` with every task reported as ``task`` (``"training"`` -> ``"refit 2020-01-03"``)."""
    if progress is None:
        return None

    def report(_: str, done: int, total: int, info: str = "") -> None:
        progress(task, done, total, info)

    return report


def refit_windows(config: BacktestConfig, returns: pd.DataFrame) -> tuple[Windows, Windows]:
    """Train / validation windows of a walk-forward refit on ``returns`` (rows up to the refit date).

    The last ``split.val_frac`` of the windows (at least one) validate, after a purge of
    ``(gap + horizon) // step`` windows; every target ends on or before the last row.
    """
    d = config.data
    source = f"{d.source} (retraining rows up to {returns.index[-1].date()})"
    windows = make_windows(
        returns, d.lookback, gap=d.gap, horizon=d.horizon, step=d.step, kind=d.kind, source=source
    )
    n_val = max(1, round(len(windows) * config.split.val_frac))
    n_train = len(windows) - n_val - (d.gap + d.horizon) // d.step
    if n_train < 1:
        raise DataError(
            f"backtest.retrain_size: retraining on {len(returns)} rows up to {returns.index[-1].date()} leaves "
            f"{len(windows)} windows, too few for train, purge and validation; use a longer retrain_size or "
            "retrain_window 'expanding'."
        )
    return windows.subset(0, n_train), windows.subset(len(windows) - n_val, len(windows))


def build_network(
    config: BacktestConfig, n_assets: int, assets: list[str] | None = None
) -> tuple[torch.nn.Module, Loss]:
    """The configured network (input ``(B, 1, lookback, n_assets)``) and training loss.

    With a ``constraints`` section, they are resolved against ``assets`` (the data's columns) and
    given to the network's convex layer (:func:`network_params`).

    Raises
    ------
    ConfigError
        Unknown network or loss name, or parameters they do not take (``network.*`` is named).
    """
    n = config.network
    config.check_references()
    model = make_network(n.name, n_assets=n_assets, lookback=config.data.lookback, where="network.params",
                         **{"seed": config.seed, **constrained_network_params(config, assets)})
    if getattr(model, "trainer", None) == "osbl":  # EIIE: checked here, before any training
        from gradfolio.experiments.backtest.holding import check_osbl_config

        check_osbl_config(config)
    loss = make_loss(n.loss, where="network.loss_params", **n.loss_params)
    return model, loss


def train_network(
    config: BacktestConfig,
    model: torch.nn.Module,
    loss: Loss,
    train: Windows,
    val: Windows,
    checkpoints: Path,
    tracker: Tracker,
    progress: Progress | None = None,
    resume: bool = False,
    task: str = "training",
) -> NetworkRun:
    """Train ``model`` on ``loss`` with early stopping on ``val`` (see :func:`build_network`).

    The trainer checkpoints every epoch to ``checkpoints/trainer.pt``, and every refit to
    ``checkpoints/refit-<date>/trainer.pt``; with ``resume=True`` an interrupted (or finished)
    training or refit continues from its checkpoint. The returned ``refit`` hook fine-tunes the
    same network on a retraining window (``backtest.retrain_epochs`` epochs, default
    ``train.epochs``), starting from its current weights. A predict-then-optimize network with an
    exact forecaster fit (``pto_ridge`` with the ``forecast_mse`` loss) is fitted in closed form instead,
    and refitted so at every retraining date.
    """
    if getattr(model, "trainer", None) == "osbl":  # EIIE: online stochastic batch learning with its PVM
        from gradfolio.experiments.backtest.holding import train_osbl_network

        def wrap(name: str) -> tuple[Tracker, Progress | None]:
            return _Prefixed(tracker, name), _renamed(progress, name)

        hook, summary = train_osbl_network(config, model, train, val, checkpoints, wrap, refit_windows, resume, task)
        return NetworkRun(model=model, refit=hook, summary=summary)
    n, t = config.network, config.train
    dtype = getattr(torch, config.dtype)
    if getattr(loss, "forecast_only", False) and getattr(model, "closed_form", False):
        return _fit_closed_form(config, model, loss, train, val)

    def trainer(epochs: int, task: str, folder: Path) -> Trainer:
        return Trainer(
            model, loss, optimizer=t.optimizer, lr=t.lr, batch_size=t.batch_size, l1=t.l1, l2=t.l2,
            patience=t.patience, max_epochs=epochs, seed=config.seed, device=config.device, dtype=dtype,
            checkpoint_dir=folder, tracker=_Prefixed(tracker, task), progress=_renamed(progress, task),
        )

    history = trainer(t.epochs, task, checkpoints).fit(train, val, resume=resume)

    def refit(returns: pd.DataFrame) -> None:
        epochs = config.backtest.retrain_epochs or t.epochs
        date = returns.index[-1].date()
        name = f"refit {date}" if task == "training" else f"{task} refit {date}"
        fit = trainer(epochs, name, checkpoints / f"refit-{date}")
        fit.fit(*refit_windows(config, returns), resume=resume)

    summary = (
        f"Network '{n.name}' trained with the '{n.loss}' loss on {len(train)} windows "
        f"({train.dates[0].date()} to {train.dates[-1].date()}), validated on {len(val)}: "
        f"{history.epochs} epochs, best validation loss {history.best_val_loss:.4f} at epoch {history.best_epoch + 1}"
        f"{' (early stop)' if history.stopped_early else ''}."
    )
    return NetworkRun(model=model, refit=refit, summary=summary)


def _fit_closed_form(config: BacktestConfig, model: torch.nn.Module, loss: Loss, train: Windows, val: Windows) -> NetworkRun:
    """A predict-then-optimize network whose forecaster has an exact fit (the ridge with ``forecast_mse``).

    The forecaster is fitted in closed form on ``train`` (the exact minimizer of the training loss: no epochs,
    nothing to checkpoint or resume); each refit fits it again on the refit's training windows.
    """
    device, dtype = resolve_device(config.device), getattr(torch, config.dtype)
    model.to(device=device, dtype=dtype)
    model.prefit(train)
    model.eval()
    v = val.to(device, dtype)
    with torch.no_grad():
        val_loss = float(loss.model_loss(model, v.X, v.y, reduction="mean"))

    def refit(returns: pd.DataFrame) -> None:
        model.prefit(refit_windows(config, returns)[0])
        model.eval()

    summary = (
        f"Network '{config.network.name}' fitted in closed form with the '{config.network.loss}' loss on {len(train)} "
        f"windows ({train.dates[0].date()} to {train.dates[-1].date()}); validation loss {val_loss:.4g} on {len(val)}."
    )
    return NetworkRun(model=model, refit=refit, summary=summary)


def retrain_schedule(config: BacktestConfig, returns: pd.DataFrame) -> RetrainSchedule | None:
    """The walk-forward refit schedule (``None``: no refits), checked on a rolling window's rows.

    Raises
    ------
    DataError
        A rolling window of ``backtest.retrain_size`` rows is too short for train and validation
        windows (checked here rather than at the first refit, after the network's training).
    """
    b = config.backtest
    if b.retrain_every is None:
        return None
    schedule = RetrainSchedule(every=b.retrain_every, window=b.retrain_window, size=b.retrain_size)
    if config.network_configs() and b.retrain_window == "rolling" and b.retrain_size is not None:
        refit_windows(config, returns.iloc[-b.retrain_size :])
    return schedule


__all__ = ["load_returns", "split_windows", "NetworkRun", "refit_windows", "build_network", "train_network", "retrain_schedule", "benchmark_params", "build_benchmarks", "network_params"]
