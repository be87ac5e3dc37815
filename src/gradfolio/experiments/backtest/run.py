"""Run a whole walk-forward backtest from a :class:`BacktestConfig` into one run folder.

:func:`run_backtest` loads the prices, splits the rolling windows by time (train / validation /
test with a purge of ``gap + horizon`` days), trains the allocation network end to end on the
training part with early stopping on the validation part, then walks the network and every
requested classical benchmark forward over the test period with proportional costs. The run
folder holds::

    config.yaml        the config that produced the run
    metrics.json       strategy -> measure -> value (also metrics.md)
    returns.parquet    daily net returns (+ gross returns and costs) per strategy
    weights.parquet    weights before/after each rebalance (long format)
    turnover.parquet   turnover per rebalance and strategy
    report.html        interactive report (self-contained) and PNG figures
    strategies/        one saved strategy bundle per strategy (strategies/<label>/strategy.json +
                       weights.pt): the network after the walk-forward and every benchmark, for
                       gradfolio.load_strategy(run) and `gradfolio predict --run RUN`
    checkpoints/       the trainer's checkpoint (trainer.pt, every epoch) and one per walk-forward
                       refit (refit-<date>/trainer.pt); a rerun into the same folder with the same
                       config resumes every training from them instead of training again

Everything the config decides (data, split, benchmarks, network and loss, device, retraining
windows) is checked before anything is trained or written.

The same is logged to MLflow through :mod:`gradfolio.tracking` when ``config.tracking``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from gradfolio.allocation import Loss, Trainer, make_loss, make_network
from gradfolio.allocation.classical import PORTFOLIOS, default_benchmarks
from gradfolio.allocation.strategy import STRATEGIES_DIR, json_params, returns_fingerprint, save_strategy
from gradfolio.backtest import BacktestResult, ProportionalCost, RetrainSchedule, Strategy, walk_forward
from gradfolio.data import Windows, load_prices, make_windows, time_split, to_returns
from gradfolio.errors import ConfigError, DataError
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.backtest.report import write_report
from gradfolio.experiments.config_io import dump_config, flatten_params, load_config
from gradfolio.seeding import resolve_device
from gradfolio.progress import Progress, prefixed
from gradfolio.tracking import MlflowTracker, NullTracker, Tracker

def benchmark_params(config: BacktestConfig) -> dict[str, dict[str, Any]]:
    """Keyword arguments of each classical portfolio named in ``config.benchmarks`` (``["all"]``: every one).

    ``returns_kind`` is the data's kind and ``seed`` (for portfolios that take one) the run's seed,
    unless ``benchmark_params`` sets them; these are the parameters saved in each benchmark's bundle.
    Names and parameters are checked against :data:`gradfolio.allocation.classical.PORTFOLIOS`.
    """
    config.check_references()
    names = default_benchmarks() if config.benchmarks == ["all"] else config.benchmarks
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        params: dict[str, Any] = {"returns_kind": config.data.kind, **config.benchmark_params.get(name, {})}
        if "seed" in PORTFOLIOS.params_model(name).model_fields:
            params.setdefault("seed", config.seed)
        out[name] = json_params(params, f"benchmark_params.{name}")
    return out


def build_benchmarks(config: BacktestConfig) -> dict[str, Strategy]:
    """The classical portfolios named in ``config.benchmarks`` (``["all"]``: every one), built through
    :data:`~gradfolio.allocation.classical.PORTFOLIOS` with :func:`benchmark_params`."""
    return {
        name: PORTFOLIOS.build(name, where=f"benchmark_params.{name}", **params)
        for name, params in benchmark_params(config).items()
    }


def network_params(config: BacktestConfig) -> dict[str, Any]:
    """The network's keyword parameters as saved in its bundle (``network.params`` without ``seed``)."""
    params = {k: v for k, v in config.network.params.items() if k != "seed"}
    return json_params(params, "network.params")


def save_strategies(
    folder: Path,
    config: BacktestConfig,
    strategies: Mapping[str, torch.nn.Module],
    network_label: str | None,
    returns: pd.DataFrame,
) -> Path:
    """Write one bundle per strategy into ``folder/strategies/<label>/`` (replacing the previous set at once).

    The network's bundle holds its weights after the walk-forward (the last refit's with
    ``retrain_every``), in ``config.dtype``; each benchmark's its parameters, in
    ``config.benchmark_dtype``. Every bundle carries the fingerprint of ``returns``.
    """
    fingerprint = returns_fingerprint(returns)
    params = benchmark_params(config)
    target = folder / STRATEGIES_DIR
    tmp = Path(tempfile.mkdtemp(prefix=".strategies.", suffix=".tmp", dir=folder))
    d, b = config.data, config.backtest
    try:
        for label, model in strategies.items():
            is_network = label == network_label
            save_strategy(
                tmp / label, model,
                kind="network" if is_network else "classical",
                name=config.network.name if is_network else label,
                label=label,
                params=network_params(config) if is_network else params[label],
                assets=[str(c) for c in returns.columns],
                returns_kind=d.kind, lookback=d.lookback, gap=d.gap,
                dtype=config.dtype if is_network else config.benchmark_dtype,
                data_fingerprint=fingerprint,
                rebalance_every=b.rebalance_every, cost_bps=b.cost_bps,
            )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


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


def build_network(config: BacktestConfig, n_assets: int) -> tuple[torch.nn.Module, Loss]:
    """The configured network (input ``(B, 1, lookback, n_assets)``) and training loss.

    Raises
    ------
    ConfigError
        Unknown network or loss name, or parameters they do not take (``network.*`` is named).
    """
    n = config.network
    config.check_references()
    model = make_network(n.name, n_assets=n_assets, lookback=config.data.lookback, where="network.params",
                         **{"seed": config.seed, **n.params})
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
) -> NetworkRun:
    """Train ``model`` on ``loss`` with early stopping on ``val`` (see :func:`build_network`).

    The trainer checkpoints every epoch to ``checkpoints/trainer.pt``, and every refit to
    ``checkpoints/refit-<date>/trainer.pt``; with ``resume=True`` an interrupted (or finished)
    training or refit continues from its checkpoint. The returned ``refit`` hook fine-tunes the
    same network on a retraining window (``backtest.retrain_epochs`` epochs, default
    ``train.epochs``), starting from its current weights.
    """
    n, t = config.network, config.train
    dtype = getattr(torch, config.dtype)

    def trainer(epochs: int, task: str, folder: Path) -> Trainer:
        return Trainer(
            model, loss, optimizer=t.optimizer, lr=t.lr, batch_size=t.batch_size, l1=t.l1, l2=t.l2,
            patience=t.patience, max_epochs=epochs, seed=config.seed, device=config.device, dtype=dtype,
            checkpoint_dir=folder, tracker=_Prefixed(tracker, task), progress=_renamed(progress, task),
        )

    history = trainer(t.epochs, "training", checkpoints).fit(train, val, resume=resume)

    def refit(returns: pd.DataFrame) -> None:
        epochs = config.backtest.retrain_epochs or t.epochs
        date = returns.index[-1].date()
        fit = trainer(epochs, f"refit {date}", checkpoints / f"refit-{date}")
        fit.fit(*refit_windows(config, returns), resume=resume)

    summary = (
        f"Network '{n.name}' trained with the '{n.loss}' loss on {len(train)} windows "
        f"({train.dates[0].date()} to {train.dates[-1].date()}), validated on {len(val)}: "
        f"{history.epochs} epochs, best validation loss {history.best_val_loss:.4f} at epoch {history.best_epoch + 1}"
        f"{' (early stop)' if history.stopped_early else ''}."
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
    if config.network.enabled and b.retrain_window == "rolling" and b.retrain_size is not None:
        refit_windows(config, returns.iloc[-b.retrain_size :])
    return schedule


def _resumable(folder: Path, config: BacktestConfig) -> bool:
    """Whether ``folder`` holds a run of the same config (its checkpoints can be resumed)."""
    previous = folder / "config.yaml"
    try:
        return previous.is_file() and load_config(BacktestConfig, previous) == config
    except ConfigError:  # written by another version: not the same run
        return False


def run_backtest(
    config: BacktestConfig, out: str | os.PathLike[str] | None = None, progress: Progress | None = None
) -> tuple[Path, BacktestResult]:
    """Run the backtest described by ``config`` and write the run folder.

    Parameters
    ----------
    config
        The run's settings.
    out
        Run folder (default ``config.out``).
    progress
        Optional :class:`gradfolio.progress.Progress` (training epochs as ``"training"`` /
        ``"refit <date>"``, backtest blocks as ``"backtest <strategy>"``).

    Returns
    -------
    (folder, result)
    """
    folder = Path(out if out is not None else config.out)
    # everything the config decides is checked before anything is trained or written
    config.check_references()
    resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    returns = load_returns(config)
    train, val, test = split_windows(config, returns)
    benchmarks = build_benchmarks(config)
    network = build_network(config, train.X.shape[-1]) if config.network.enabled else None
    if network is not None:
        network_params(config)  # a bundle holds JSON parameters only: checked before training
    schedule = retrain_schedule(config, returns)
    resume = _resumable(folder, config)
    if not resume:  # checkpoints of another config must not be resumed
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    dump_config(config, folder / "config.yaml")
    tracker = (
        MlflowTracker(config.experiment, run_name=folder.name, tracking_uri=config.tracking_uri)
        if config.tracking
        else NullTracker()
    )
    with tracker:
        tracker.log_params(flatten_params(config.model_dump(mode="json")))
        strategies: dict[str, Strategy] = {}
        hooks = {}
        notes = ""
        label = None
        if network is not None:
            run = train_network(
                config, *network, train, val, folder / "checkpoints", tracker, progress, resume=resume
            )
            label = f"net_{config.network.name}"
            strategies[label] = run.model
            hooks[label] = run.refit
            notes = run.summary
        strategies.update(benchmarks)
        b = config.backtest
        result = walk_forward(
            strategies,
            returns,
            config.data.lookback,
            gap=config.data.gap,
            rebalance_every=b.rebalance_every,
            cost=ProportionalCost.from_bps(b.cost_bps),
            start=test.dates[0],
            kind=config.data.kind,
            retrain=schedule,
            fit_hooks=hooks if schedule is not None else None,
            device=config.device,
            dtype=dtype,
            dtypes={name: getattr(torch, config.benchmark_dtype) for name in benchmarks},
            progress=prefixed(progress, "backtest ") if progress else None,
            infeasible="keep",
        )
        result.save(folder)
        save_strategies(folder, config, strategies, label, returns)  # type: ignore[arg-type]
        write_report(result, folder, title=f"Walk-forward backtest: {config.data.source}", notes=notes)
        for name, row in result.metrics().iterrows():
            tracker.log_metrics({f"{name}.{k}": float(v) for k, v in row.items() if pd.notna(v)})
        tracker.log_artifact(folder)
    return folder, result


__all__ = [
    "NetworkRun",
    "build_network",
    "train_network",
    "refit_windows",
    "retrain_schedule",
    "benchmark_params",
    "build_benchmarks",
    "network_params",
    "save_strategies",
    "load_returns",
    "split_windows",
    "run_backtest",
]
