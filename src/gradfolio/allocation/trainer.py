"""Train an allocation network end to end on a portfolio loss, with early stopping and resume.

:class:`Trainer` runs mini-batch training (Adam, ANA or any ``torch.optim`` factory) on
:class:`gradfolio.data.Windows`, evaluates the validation loss after every epoch, stops after
``patience`` epochs without improvement and restores the best weights. After each epoch it
saves (atomically) a checkpoint with the model, optimizer, best state, history, the RNG states
and a fingerprint of the settings; ``fit(..., resume=True)`` continues from it and gives bitwise
the same result as an uninterrupted run (same device). ``fit`` draws its randomness (shuffling,
dropout) from its ``seed`` inside a forked RNG: the caller's global RNG is left as it was.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradfolio.allocation.losses import Loss
from gradfolio.checkpoint import Checkpoint
from gradfolio.data import Windows
from gradfolio.errors import ConfigError, DataError
from gradfolio.optim import at_iterates, make_optimizer
from gradfolio.progress import Progress, no_progress
from gradfolio.seeding import make_generator, resolve_device
from gradfolio.tracking import NullTracker, Tracker

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
        A :class:`~gradfolio.allocation.losses.Loss`, evaluated on each batch as
        ``loss.model_loss(model, X, y, w_prev)`` (a portfolio loss of ``model(X)``; the
        ``forecast_mse`` loss of a predict-then-optimize network's forecast). A loss that needs previous weights
        (turnover) gets the weights the model, in eval mode and without gradient, gives to the
        window one step earlier in the same set; the first window of a set has no predecessor
        there (for ``val[0]`` it lies in the purge gap) and is compared with itself (turnover 0).
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
        Seeds the randomness of ``fit``: the shuffling (its own CPU generator) and dropout (the
        global CPU / CUDA RNG, forked for the duration of ``fit`` and restored afterwards). The
        model's initialisation is seeded where it is built (``make_network(..., seed=)``).
    device, dtype
        Where and in which precision to train.
    checkpoint_dir
        Folder of ``trainer.pt`` (written atomically after each epoch); ``None`` for none.
        Resuming checks that the model's parameter names and shapes, the loss, ``batch_size``,
        ``lr``, ``l1``, ``l2``, the optimizer class and ``dtype`` are those of the checkpoint.
    tracker
        A :class:`gradfolio.tracking.Tracker` to log params and epoch metrics (``NullTracker`` default).
    progress
        A :class:`gradfolio.progress.Progress` called after every epoch as
        ``progress("training", epoch + 1, max_epochs, "train 0.1234  val 0.2345  best 0.2345")``
        (the command line draws it as a bar; default: nothing).
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
        tracker: Tracker | None = None,
        progress: Progress | None = None,
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
        self.tracker: Tracker = tracker or NullTracker()
        self.progress: Progress = progress or no_progress
        self.optimizer_name = optimizer if isinstance(optimizer, str) else getattr(optimizer, "__name__", "custom")

    def _make_optimizer(self, optimizer: str | OptimizerFactory) -> torch.optim.Optimizer:
        params = list(self.model.parameters())
        if callable(optimizer):
            return optimizer(params)
        return make_optimizer(optimizer, params, self.lr, where="Trainer: optimizer")

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
        w_prev = self._previous_weights(X, idx) if self.loss.needs_w_prev else None
        return self.loss.model_loss(self.model, X[idx], y[idx], w_prev=w_prev, reduction="mean")

    @torch.no_grad()
    def _previous_weights(self, X: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Weights ``(len(idx), N)`` of the windows one step before ``idx`` (window 0: itself), in eval mode."""
        training = self.model.training
        self.model.eval()
        try:
            return self.model(X[(idx - 1).clamp(min=0)])
        finally:
            self.model.train(training)

    @torch.no_grad()
    def evaluate(self, windows: Windows) -> float:
        """Mean loss of the model (eval mode) over ``windows``, in batches of ``batch_size``."""
        data = windows.to(self.device, self.dtype)
        self.model.eval()
        with at_iterates(self.optimizer):
            n = len(data)
            total = 0.0
            for start in range(0, n, self.batch_size):
                idx = torch.arange(start, min(start + self.batch_size, n), device=self.device)
                total += float(self._batch_loss(data.X, data.y, idx)) * len(idx)
        return total / n

    # -- checkpointing ----------------------------------------------------------------------------

    def _checkpoint(self) -> Checkpoint | None:
        """The fingerprinted checkpoint file (``None`` without ``checkpoint_dir``)."""
        if self.checkpoint_dir is None:
            return None
        path = self.checkpoint_dir / CHECKPOINT
        fix = f"delete {path} (or use another checkpoint_dir) to start afresh, or pass resume=False"
        return Checkpoint(path, self._fingerprint(), owner="Trainer", fix=fix)

    def _settings(self) -> dict[str, Any]:
        """The training settings both logged (:meth:`fit`) and checked on resume (:meth:`_fingerprint`)."""
        return {
            "model": type(self.model).__name__,
            "loss": repr(self.loss),
            "batch_size": self.batch_size,
            "lr": self.lr,
            "l1": self.l1,
            "l2": self.l2,
        }

    def _fingerprint(self) -> dict[str, Any]:
        """The settings a resumed run must share with the checkpoint it resumes."""
        return {
            **self._settings(),
            "parameters": {name: tuple(t.shape) for name, t in self.model.state_dict().items()},
            "optimizer": type(self.optimizer).__name__,
            "dtype": str(self.dtype),
        }

    def _rng_devices(self) -> list[torch.device]:
        """CUDA devices whose RNG ``fit`` forks, saves and restores (none on CPU)."""
        return [self.device] if self.device.type == "cuda" else []

    def _seed_rng(self) -> None:
        """Seed the CPU RNG and the training device's CUDA RNG (only those) with ``seed``."""
        torch.default_generator.manual_seed(self.seed)
        for device in self._rng_devices():
            with torch.cuda.device(device):
                torch.cuda.manual_seed(self.seed)

    def _save(self, epoch: int, state: dict[str, Any]) -> None:
        checkpoint = self._checkpoint()
        if checkpoint is None:
            return
        checkpoint.save({
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "cpu_rng": torch.get_rng_state(),
            "cuda_rng": [torch.cuda.get_rng_state(d) for d in self._rng_devices()],
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
            Continue from ``checkpoint_dir/trainer.pt`` if it exists (else start afresh); needs
            ``checkpoint_dir``.

        Raises
        ------
        ConfigError
            ``resume`` without ``checkpoint_dir``; an unreadable checkpoint or one written with
            other settings (see ``checkpoint_dir``).
        DataError
            Empty windows, or a non-finite training loss.
        """
        if len(train) == 0 or len(val) == 0:
            raise DataError(f"Trainer.fit: train has {len(train)} and val {len(val)} windows; both must be non-empty.")
        if resume and self.checkpoint_dir is None:
            raise ConfigError("Trainer.fit: resume=True needs a checkpoint_dir to resume from; pass checkpoint_dir=.")
        with torch.random.fork_rng(devices=self._rng_devices()):
            return self._fit(train.to(self.device, self.dtype), val, resume)

    def _fit(self, tr: Windows, val: Windows, resume: bool) -> History:
        shuffler = make_generator(self.seed)  # CPU generator: same permutation on every device
        history = History()
        best_state = copy.deepcopy(self.model.state_dict())
        bad_epochs, start = 0, 0
        checkpoint = self._checkpoint()
        if resume and checkpoint is not None and checkpoint.exists():
            ckpt = checkpoint.load(map_location=self.device)
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            torch.set_rng_state(ckpt["cpu_rng"].cpu())
            for device, state in zip(self._rng_devices(), ckpt["cuda_rng"]):
                torch.cuda.set_rng_state(state.cpu(), device)
            shuffler.set_state(ckpt["shuffler"].cpu())
            history, best_state, bad_epochs = History(**ckpt["history"]), ckpt["best_state"], ckpt["bad_epochs"]
            start = ckpt["epoch"] + 1
        else:
            self._seed_rng()
        # Every run (a resumed one too) carries its parameters; a resumed run says where it started.
        self.tracker.log_params({
            **self._settings(), "optimizer": self.optimizer_name,
            "patience": self.patience, "max_epochs": self.max_epochs, "seed": self.seed, "start_epoch": start,
        })
        stop = history.stopped_early
        for epoch in range(start, self.max_epochs):
            if stop:
                break
            train_loss = self._epoch(tr, shuffler, epoch)
            val_loss = self.evaluate(val)
            history.train_loss.append(train_loss)
            history.val_loss.append(val_loss)
            if val_loss < history.best_val_loss:
                history.best_val_loss, history.best_epoch, bad_epochs = val_loss, epoch, 0
                with at_iterates(self.optimizer):
                    best_state = copy.deepcopy(self.model.state_dict())
            else:
                bad_epochs += 1
            stop = history.stopped_early = bad_epochs >= self.patience
            self._save(epoch, {"shuffler": shuffler.get_state(), "history": dataclasses.asdict(history),
                               "best_state": best_state, "bad_epochs": bad_epochs})
            self.tracker.log_metrics({"train_loss": train_loss, "val_loss": val_loss}, step=epoch)
            self.progress("training", epoch + 1, self.max_epochs,
                          f"train {train_loss:.4f}  val {val_loss:.4f}  best {history.best_val_loss:.4f}")
        self.model.load_state_dict(best_state)
        self.model.eval()
        return history

    def _epoch(self, data: Windows, shuffler: torch.Generator, epoch: int) -> float:
        self.model.train()
        n = len(data)
        order = torch.randperm(n, generator=shuffler).to(self.device)
        total = 0.0
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._batch_loss(data.X, data.y, idx)
            if not torch.isfinite(loss):
                dates = data.dates[idx.cpu().numpy()]
                raise DataError(
                    f"Trainer: the training loss is {loss.item()} at epoch {epoch} on a batch of windows dated "
                    f"{dates.min().date()} to {dates.max().date()}: the network's outputs diverged or the windows "
                    "hold non-finite values; lower lr, check train.X / train.y for NaN or inf, or use a ratio "
                    "loss with a larger eps."
                )
            (loss + self._penalty()).backward()
            self.optimizer.step()
            total += loss.item() * len(idx)
        return total / n


__all__ = ["History", "Trainer", "CHECKPOINT"]
