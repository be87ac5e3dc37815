"""Train an allocation network end to end on a portfolio loss, with early stopping and resume.

:class:`Trainer` runs mini-batch training (Adam, ANA or any ``torch.optim`` factory) on
:class:`gradfolio.data.Windows`, evaluates the validation loss after every epoch, stops after
``patience`` epochs without improvement and restores the best weights. After each epoch it
saves (atomically) a checkpoint with the model, optimizer, best state, history and every RNG
state; ``fit(..., resume=True)`` continues from it and gives bitwise the same result as an
uninterrupted run (same device).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradfolio.allocation.losses import Loss
from gradfolio.data import Windows
from gradfolio.errors import ConfigError, DataError
from gradfolio.io import load_checkpoint, save_checkpoint
from gradfolio.seeding import make_generator, resolve_device
from gradfolio.tracking import NullTracker

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
CHECKPOINT = "trainer.pt"


@dataclass
class History:
    """Per-epoch metrics of a :meth:`Trainer.fit` call.

    Attributes
    ----------
    train_loss, val_loss
        Mean loss per epoch (training loss without the L1/L2 penalty).
    best_epoch
        Epoch (0-based) whose weights were restored; ``best_val_loss`` its validation loss.
    stopped_early
        Whether patience ran out before ``max_epochs``.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        """Epochs run."""
        return len(self.train_loss)


class Trainer:
    """Mini-batch trainer of an allocation network ``X (B, C, L, N) -> w (B, N)``.

    Parameters
    ----------
    model
        The network (moved to ``device`` / ``dtype``).
    loss
        A :class:`~gradfolio.allocation.losses.Loss`; a loss that needs previous weights gets
        the (detached) weights the model gives to the window one step earlier.
    optimizer
        ``"adam"``, ``"ana"`` (:class:`gradfolio.optim.ANA`) or a factory ``params -> Optimizer``.
    lr
        Learning rate of ``"adam"`` / ``"ana"``.
    batch_size
        Samples per step (32 as in the thesis).
    l1, l2
        Penalties ``l1 * sum |theta| + l2 * sum theta^2`` over weight matrices (not biases).
    patience
        Epochs without validation improvement before stopping.
    max_epochs
        Upper bound on epochs.
    seed
        Seeds initialization-independent randomness: shuffling and dropout.
    device, dtype
        Where and in which precision to train.
    checkpoint_dir
        Folder of ``trainer.pt`` (written atomically after each epoch); ``None`` for none.
    tracker
        :class:`gradfolio.tracking.Tracker` to log params and epoch metrics (``NullTracker`` default).
    progress
        Show a rich progress bar.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Loss,
        optimizer: str | OptimizerFactory = "adam",
        lr: float = 1e-3,
        batch_size: int = 32,
        l1: float = 0.0,
        l2: float = 0.0,
        patience: int = 15,
        max_epochs: int = 100,
        seed: int = 0,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        checkpoint_dir: str | Path | None = None,
        tracker: NullTracker | None = None,
        progress: bool = False,
    ):
        if batch_size < 1 or patience < 1 or max_epochs < 1:
            raise ConfigError(
                f"Trainer: batch_size={batch_size}, patience={patience}, max_epochs={max_epochs} must all be >= 1."
            )
        if l1 < 0 or l2 < 0 or not lr > 0:
            raise ConfigError(f"Trainer: l1={l1}, l2={l2} must be >= 0 and lr={lr} > 0.")
        self.device = resolve_device(device)
        self.dtype = dtype
        self.model = model.to(device=self.device, dtype=dtype)
        self.loss = loss
        self.lr, self.batch_size, self.l1, self.l2 = lr, batch_size, l1, l2
        self.patience, self.max_epochs, self.seed = patience, max_epochs, seed
        self.optimizer = self._make_optimizer(optimizer)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.tracker = tracker or NullTracker()
        self.progress = progress
        self.optimizer_name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "custom")

    def _make_optimizer(self, optimizer: str | OptimizerFactory) -> torch.optim.Optimizer:
        params = list(self.model.parameters())
        if optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        if optimizer == "ana":
            from gradfolio.optim import ANA

            return ANA(params, lr=self.lr)
        if callable(optimizer):
            return optimizer(params)
        raise ConfigError(f"Trainer: optimizer={optimizer!r} is unknown; use 'adam', 'ana' or a factory.")

    # -- evaluation -------------------------------------------------------------------------------

    def _penalty(self) -> torch.Tensor:
        total = torch.zeros((), device=self.device, dtype=self.dtype)
        if self.l1 == 0 and self.l2 == 0:
            return total
        for p in self.model.parameters():
            if p.ndim > 1:
                total = total + self.l1 * p.abs().sum() + self.l2 * p.pow(2).sum()
        return total

    def _batch_loss(self, X: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        w = self.model(X[idx])
        w_prev = None
        if self.loss.needs_w_prev:
            with torch.no_grad():
                w_prev = self.model(X[(idx - 1).clamp(min=0)])
        return self.loss(w, y[idx], w_prev=w_prev, reduction="mean")

    @torch.no_grad()
    def evaluate(self, windows: Windows) -> float:
        """Mean loss of the model (eval mode) over ``windows``, in batches of ``batch_size``."""
        data = windows.to(self.device, self.dtype)
        self.model.eval()
        with self._at_iterates():
            n = len(data)
            total = 0.0
            for start in range(0, n, self.batch_size):
                idx = torch.arange(start, min(start + self.batch_size, n), device=self.device)
                total += float(self._batch_loss(data.X, data.y, idx)) * len(idx)
        return total / n

    def _at_iterates(self) -> _Swap:
        """With ANA, evaluate at the iterates ``theta^r`` rather than the look-ahead points."""
        iterates = getattr(self.optimizer, "iterates", None)
        return _Swap(self.model, iterates() if iterates is not None else None)

    # -- checkpointing ----------------------------------------------------------------------------

    def _path(self) -> Path | None:
        return self.checkpoint_dir / CHECKPOINT if self.checkpoint_dir is not None else None

    def _save(self, epoch: int, state: dict[str, Any]) -> None:
        path = self._path()
        if path is None:
            return
        save_checkpoint(path, {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "cpu_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            **state,
        })

    # -- training ---------------------------------------------------------------------------------

    def fit(self, train: Windows, val: Windows, resume: bool = False) -> History:
        """Train on ``train`` with early stopping on ``val``; restore and return the best weights' history.

        Parameters
        ----------
        train, val
            Training and validation windows (see :func:`gradfolio.data.time_split`).
        resume
            Continue from ``checkpoint_dir/trainer.pt`` if it exists (else start afresh).
        """
        if len(train) == 0 or len(val) == 0:
            raise DataError(f"Trainer.fit: train has {len(train)} and val {len(val)} windows; both must be non-empty.")
        tr = train.to(self.device, self.dtype)
        shuffler = make_generator(self.seed)  # CPU generator: same permutation on every device
        history = History()
        best_state = copy.deepcopy(self.model.state_dict())
        bad_epochs, start = 0, 0
        path = self._path()
        if resume and path is not None and path.exists():
            ckpt = load_checkpoint(path, map_location=self.device)
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            torch.set_rng_state(ckpt["cpu_rng"].cpu())
            if ckpt["cuda_rng"] is not None:
                torch.cuda.set_rng_state_all([s.cpu() for s in ckpt["cuda_rng"]])
            shuffler.set_state(ckpt["shuffler"].cpu())
            history, best_state, bad_epochs = ckpt["history"], ckpt["best_state"], ckpt["bad_epochs"]
            start = ckpt["epoch"] + 1
        else:
            torch.manual_seed(self.seed)
            self.tracker.log_params({
                "model": type(self.model).__name__, "loss": repr(self.loss), "optimizer": self.optimizer_name,
                "lr": self.lr, "batch_size": self.batch_size, "l1": self.l1, "l2": self.l2,
                "patience": self.patience, "max_epochs": self.max_epochs, "seed": self.seed,
            })
        stop = history.stopped_early
        with _progress(self.progress, self.max_epochs, start) as advance:
            for epoch in range(start, self.max_epochs):
                if stop:
                    break
                train_loss = self._epoch(tr, shuffler)
                val_loss = self.evaluate(val)
                history.train_loss.append(train_loss)
                history.val_loss.append(val_loss)
                if val_loss < history.best_val_loss:
                    history.best_val_loss, history.best_epoch, bad_epochs = val_loss, epoch, 0
                    with self._at_iterates():
                        best_state = copy.deepcopy(self.model.state_dict())
                else:
                    bad_epochs += 1
                stop = history.stopped_early = bad_epochs >= self.patience
                self._save(epoch, {"shuffler": shuffler.get_state(), "history": history,
                                   "best_state": best_state, "bad_epochs": bad_epochs})
                self.tracker.log_metrics({"train_loss": train_loss, "val_loss": val_loss}, step=epoch)
                advance(f"train {train_loss:.4f}  val {val_loss:.4f}  best {history.best_val_loss:.4f}")
        self.model.load_state_dict(best_state)
        self.model.eval()
        return history

    def _epoch(self, data: Windows, shuffler: torch.Generator) -> float:
        self.model.train()
        n = len(data)
        order = torch.randperm(n, generator=shuffler).to(self.device)
        total = 0.0
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._batch_loss(data.X, data.y, idx)
            if not torch.isfinite(loss):
                raise DataError(
                    f"Trainer: the loss is {float(loss)} on a training batch; check the windows for constant "
                    "returns (zero volatility) or lower lr."
                )
            (loss + self._penalty()).backward()
            self.optimizer.step()
            total += loss.item() * len(idx)
        return total / n


class _Swap:
    """Context manager that puts ``values`` into the model's parameters and restores them on exit."""

    def __init__(self, model: nn.Module, values: list[torch.Tensor] | None):
        self.params = list(model.parameters())
        self.values = values
        self.saved: list[torch.Tensor] = []

    def __enter__(self) -> None:
        if self.values is not None:
            with torch.no_grad():
                self.saved = [p.detach().clone() for p in self.params]
                for p, v in zip(self.params, self.values):
                    p.copy_(v)

    def __exit__(self, *exc: object) -> None:
        if self.values is not None:
            with torch.no_grad():
                for p, v in zip(self.params, self.saved):
                    p.copy_(v)


class _progress:
    """A rich progress bar over epochs (a no-op when disabled); yields ``advance(description)``."""

    def __init__(self, enabled: bool, total: int, completed: int):
        self.enabled, self.total, self.completed = enabled, total, completed

    def __enter__(self) -> Callable[[str], None]:
        if not self.enabled:
            return lambda _: None
        from rich.progress import Progress

        self.bar = Progress()
        self.bar.__enter__()
        task = self.bar.add_task("epochs", total=self.total, completed=self.completed)
        return lambda text: self.bar.update(task, advance=1, description=text)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(None, None, None)


__all__ = ["History", "Trainer", "CHECKPOINT"]
