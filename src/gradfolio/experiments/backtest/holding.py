"""Networks of a backtest run that see what they hold and train by OSBL (EIIE).

A network whose class declares ``trainer = "osbl"`` (:class:`gradfolio.allocation.rl.eiie.EIIE`) is
trained by :class:`gradfolio.allocation.rl.osbl.OSBLTrainer` instead of the mini-batch
:class:`~gradfolio.allocation.trainer.Trainer`, from the same config sections:

- ``train.epochs`` x (training periods // ``train.batch_size``) steps of ``train.batch_size``
  consecutive periods (at most the periods - 1), Adam at ``train.lr``, ``train.l2`` on the
  convolution weights, ``seed``, ``dtype`` and ``device``;
- the commission rate of the reward is the backtest's ``backtest.cost_bps / 10000``;
- the OSBL bias ``beta`` and the commission method are network parameters
  (``network.params.beta``, ``network.params.commission_method``).

Its training windows must be consecutive periods (``data.step == data.horizon``) and its
``returns_kind`` the data's ``kind``; ``network.loss`` is not used (the reward is the log return
net of the commission factor). Checkpoints: ``checkpoints/osbl.pt`` (every epoch's worth of
steps) and ``checkpoints/refit-<date>/osbl.pt``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from gradfolio.allocation.rl.osbl import OSBLTrainer
from gradfolio.data import Windows
from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.progress import Progress
from gradfolio.tracking import Tracker


def trains_by_osbl(model: object) -> bool:
    """Whether ``model`` declares the OSBL trainer (``trainer = "osbl"``, as EIIE)."""
    return getattr(model, "trainer", None) == "osbl"


def check_osbl_config(config: BacktestConfig, warn: bool = True) -> None:
    """Raise :class:`ConfigError` where the config cannot train an OSBL network; with ``warn``, warn about a
    loss other than the default (``network.loss`` is not used)."""
    d, n = config.data, config.network
    if d.step != d.horizon:
        raise ConfigError(
            f"data.step={d.step}, data.horizon={d.horizon}: network '{n.name}' trains on consecutive periods "
            "(its portfolio-vector memory); set data.step equal to data.horizon (e.g. both = backtest.rebalance_every)."
        )
    kind = n.params.get("returns_kind", "simple")
    if n.params.get("inputs", "returns") == "returns" and kind != d.kind:
        raise ConfigError(
            f"network.params.returns_kind={kind!r} but data.kind={d.kind!r}: the network reads the windows' returns; "
            f"set network.params.returns_kind: {d.kind}."
        )
    if config.train.optimizer != "adam":
        raise ConfigError(f"train.optimizer={config.train.optimizer!r}: network '{n.name}' trains with Adam; use 'adam'.")
    if warn and (n.loss != "sharpe" or n.loss_params):
        warnings.warn(
            f"network.loss={n.loss!r} is not used by '{n.name}': it is trained on the log return net of Jiang et al.'s "
            "commission factor (OSBL).",
            stacklevel=3,
        )


def osbl_trainer(
    config: BacktestConfig, model: torch.nn.Module, periods: int, folder: Path, tracker: Tracker,
    progress: Progress | None, epochs: int,
) -> OSBLTrainer:
    """The :class:`OSBLTrainer` of ``model`` for ``periods`` training periods (see the module doc)."""
    t = config.train
    batch = max(1, min(t.batch_size, periods - 1))
    per_epoch = max(1, periods // batch)
    return OSBLTrainer(
        model, commission=config.backtest.cost_bps / 1e4, steps=epochs * per_epoch, batch_size=batch, lr=t.lr,  # type: ignore[arg-type]
        l2=t.l2, seed=config.seed, device=config.device, dtype=getattr(torch, config.dtype),
        checkpoint_dir=folder, checkpoint_every=per_epoch, tracker=tracker, progress=progress,
    )


Wrap = Callable[[str], tuple[Tracker, "Progress | None"]]
"""``task -> (tracker, progress)`` reporting under that task name (``"training"``, ``"refit 2020-06-01"``)."""


def train_osbl_network(
    config: BacktestConfig,
    model: torch.nn.Module,
    train: Windows,
    val: Windows,
    checkpoints: Path,
    wrap: Wrap,
    refit_windows: Callable[[BacktestConfig, pd.DataFrame], tuple[Windows, Windows]],
    resume: bool = False,
    task: str = "training",
) -> tuple[Callable[[pd.DataFrame], None], str]:
    """Train ``model`` by OSBL (see the module doc); returns its refit hook and a one-line summary.

    ``wrap`` and ``refit_windows`` come from :func:`.build.train_network` (its tracker and
    progress under a task name; the train / validation windows of a refit).
    """
    check_osbl_config(config, warn=False)  # build_network warned already
    trainer = osbl_trainer(config, model, len(train), checkpoints, *wrap(task), config.train.epochs)
    history = trainer.fit(train, val, resume=resume)

    def refit(returns: pd.DataFrame) -> None:
        epochs = config.backtest.retrain_epochs or config.train.epochs
        date = returns.index[-1].date()
        name = f"refit {date}" if task == "training" else f"{task} refit {date}"
        fit_train, fit_val = refit_windows(config, returns)
        again = osbl_trainer(config, model, len(fit_train), checkpoints / f"refit-{date}", *wrap(name), epochs)
        again.fit(fit_train, fit_val, resume=resume)

    n = config.network
    recent = history.reward[-trainer.checkpoint_every:]
    summary = (
        f"Network '{n.name}' trained by OSBL on the log return net of the commission factor "
        f"(c = {config.backtest.cost_bps:g} bps) over {len(train)} periods ({train.dates[0].date()} to "
        f"{train.dates[-1].date()}): {history.steps} steps of {trainer.batch_size} periods, mean reward of the "
        f"last {len(recent)} steps {sum(recent) / max(1, len(recent)):.6f}, validation reward "
        f"{history.val_reward:.6f} per period."
    )
    return refit, summary


__all__ = ["check_osbl_config", "osbl_trainer", "train_osbl_network", "trains_by_osbl"]
