"""Online stochastic batch learning (OSBL) of EIIE with a portfolio-vector memory.

Jiang, Xu and Liang's training of :class:`~gradfolio.allocation.rl.eiie.EIIE`. The training
windows are consecutive periods ``t = 0 .. n-1`` (``step == horizon``): window ``t`` sees ``X_t``
and its period's price relatives are ``y_t = (1, prod_h (1 + R_{t,h,i}))_i`` (cash first). The
*portfolio-vector memory* ``PVM (n, N + 1)`` holds the last weights the network gave to every
period (all cash at the start). One step:

1. draw the first period ``s`` of a batch of ``b`` consecutive periods with probability
   ``P(s) ∝ beta (1 - beta)^{(n - b) - s}``, ``s = 0 .. n - b`` (recent batches more often);
2. ``w_t = EIIE(X_t, previous = PVM[t - 1])`` for ``t = s .. s + b - 1`` (``PVM[-1]``: cash);
3. reward ``J = mean_t log(mu_t * y_t . w_t)`` with the commission factor ``mu_t`` of the trade
   from ``w'_{t-1} = drift(w_{t-1}, y_{t-1})`` to ``w_t`` (``w_{s-1} = PVM[s - 1]``, fixed; the
   others are the batch's outputs), eq. (14) solved iteratively (or its approximation);
4. an Adam step on ``-J + l2 * sum theta^2`` (weight tensors); ``PVM[s .. s+b-1] = w`` (detached).

The sampler draws from its own seeded CPU generator; the checkpoint (every
``checkpoint_every`` steps, atomic, fingerprinted: :class:`gradfolio.checkpoint.Checkpoint`)
holds the model, the optimizer, the PVM, the sampler's state and the history, so that
``fit(..., resume=True)`` ends bitwise where an uninterrupted run ends (same device). A
non-finite reward stops the training with a :class:`~gradfolio.errors.DataError` naming the step;
the checkpoint of the last good step is kept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gradfolio.allocation.rl.eiie import (
    EIIE,
    approx_commission_factor,
    commission_factor,
    drift,
)
from gradfolio.checkpoint import Checkpoint
from gradfolio.data import Windows
from gradfolio.errors import ConfigError, DataError
from gradfolio.progress import Progress, no_progress
from gradfolio.seeding import make_generator, resolve_device
from gradfolio.tracking import NullTracker, Tracker

CHECKPOINT = "osbl.pt"


def period_relatives(windows: Windows) -> Tensor:
    """Price relatives of each window's period with cash first: ``y (n, 1, H, N) -> (n, N + 1)``."""
    growth = torch.prod(1.0 + windows.y[:, 0], dim=1)
    return torch.cat([torch.ones_like(growth[:, :1]), growth], dim=1)


def geometric_start(n_starts: int, beta: float, generator: torch.Generator) -> int:
    """A batch start in ``0 .. n_starts - 1`` with ``P(s) ∝ beta (1 - beta)^{n_starts - 1 - s}``.

    Inverse-CDF draw of a geometric variable truncated to ``1 .. n_starts`` (one uniform from
    ``generator``), equal in law to the authors' redraw-until-it-fits sampler.
    """
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    mass = 1.0 - (1.0 - beta) ** n_starts
    g = math.ceil(math.log1p(-u * mass) / math.log1p(-beta))
    g = min(max(g, 1), n_starts)
    return n_starts - g


def geometric_probabilities(n_starts: int, beta: float) -> Tensor:
    """The law of :func:`geometric_start`: ``(n_starts,)`` float64 probabilities."""
    k = torch.arange(n_starts - 1, -1, -1, dtype=torch.float64)
    p = beta * (1.0 - beta) ** k
    return p / p.sum()


@dataclass
class OSBLHistory:
    """Per-step training rewards of :meth:`OSBLTrainer.fit` (mean log return net of costs per period)."""

    reward: list[float] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    val_reward: float | None = None

    @property
    def steps(self) -> int:
        """Steps run."""
        return len(self.reward)


class OSBLTrainer:
    """OSBL training of an :class:`EIIE` on the log return net of Jiang et al.'s commission factor.

    Parameters
    ----------
    model
        The :class:`EIIE` (moved to ``device`` / ``dtype``).
    commission
        Commission rate ``c`` of buying and selling (0.0025 in the paper; a backtest's cost rate).
    steps
        Training steps (batches).
    batch_size
        Consecutive periods per batch ``b`` (50 in the paper).
    beta
        Geometric bias towards recent batches, in ``(0, 1)`` (default: ``model.beta``).
    lr
        Adam's learning rate.
    l2
        Penalty ``l2 * sum theta^2`` on the convolution weights (not biases).
    method
        ``"iterative"`` (eq. 14) or ``"approx"`` commission factor (default: ``model.commission_method``).
    seed
        Seeds the batch sampler (its own CPU generator).
    device, dtype
        Where and in which precision to train.
    checkpoint_dir, checkpoint_every
        Folder of ``osbl.pt`` and the steps between checkpoints (and the last step); ``None``: none.
    tracker, progress
        Logged parameters and the mean ``reward`` of the steps since the last report, and a progress
        callback ``progress("training", step, steps, "reward 0.00012")``, every ``checkpoint_every``
        steps and at the last.
    """

    def __init__(
        self,
        model: EIIE,
        commission: float = 0.0025,
        steps: int = 1000,
        batch_size: int = 50,
        beta: float | None = None,
        lr: float = 1e-3,
        l2: float = 0.0,
        method: str | None = None,
        seed: int = 0,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int = 100,
        tracker: Tracker | None = None,
        progress: Progress | None = None,
    ):
        if not isinstance(model, EIIE):
            raise ConfigError(f"OSBLTrainer: model is a {type(model).__name__}; OSBL trains an EIIE network.")
        beta = model.beta if beta is None else beta
        method = model.commission_method if method is None else method
        if not (isinstance(commission, (int, float)) and 0 <= commission < 1):
            raise ConfigError(f"OSBLTrainer: commission={commission!r} must lie in [0, 1) (e.g. 0.0025).")
        if not (isinstance(beta, (int, float)) and 0 < beta < 1):
            raise ConfigError(f"OSBLTrainer: beta={beta!r} must lie in (0, 1) (e.g. 0.05).")
        if method not in ("iterative", "approx"):
            raise ConfigError(f"OSBLTrainer: method={method!r}; use 'iterative' or 'approx'.")
        for name, value in (("steps", steps), ("batch_size", batch_size), ("checkpoint_every", checkpoint_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"OSBLTrainer: {name}={value!r} must be an integer >= 1.")
        if not lr > 0 or not l2 >= 0:
            raise ConfigError(f"OSBLTrainer: lr={lr} must be > 0 and l2={l2} >= 0.")
        self.device = resolve_device(device)
        self.dtype = dtype
        self.model = model.to(device=self.device, dtype=dtype)
        self.commission, self.steps, self.batch_size = float(commission), steps, batch_size
        self.beta, self.lr, self.l2, self.method, self.seed = float(beta), lr, l2, method, seed
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.tracker: Tracker = tracker or NullTracker()
        self.progress: Progress = progress or no_progress
        self.pvm: Tensor | None = None

    # -- reward -----------------------------------------------------------------------------------

    def mu(self, drifted: Tensor, target: Tensor) -> Tensor:
        """Commission factor ``(B, N + 1), (B, N + 1) -> (B,)`` by the trainer's ``method``."""
        if self.method == "approx":
            return approx_commission_factor(drifted, target, self.commission)
        return commission_factor(drifted, target, self.commission)

    def reward(self, w: Tensor, y: Tensor, w_before: Tensor, y_before: Tensor) -> Tensor:
        """Mean log return net of costs of consecutive periods.

        Parameters
        ----------
        w
            Weights of periods ``s .. s+b-1``, ``(b, N + 1)`` cash first.
        y
            Their price relatives, ``(b, N + 1)``.
        w_before, y_before
            Weights and price relatives of period ``s - 1``, ``(N + 1,)`` each.

        Returns
        -------
        Scalar ``mean_t log(mu_t * y_t . w_t)``.
        """
        previous = torch.cat([w_before[None], w[:-1]])
        moved = torch.cat([y_before[None], y[:-1]])
        mu = self.mu(drift(previous, moved), w)
        return torch.log(mu * (y * w).sum(-1)).mean()

    def _penalty(self) -> Tensor:
        total = torch.zeros((), device=self.device, dtype=self.dtype)
        if self.l2 == 0:
            return total
        for p in self.model.parameters():
            if p.ndim > 1:
                total = total + self.l2 * p.pow(2).sum()
        return total

    # -- checkpointing ----------------------------------------------------------------------------

    def _fingerprint(self, n: int) -> dict[str, Any]:
        return {
            "model": type(self.model).__name__,
            "parameters": {k: tuple(v.shape) for k, v in self.model.state_dict().items()},
            "commission": self.commission, "batch_size": self.batch_size, "beta": self.beta, "lr": self.lr,
            "l2": self.l2, "method": self.method, "seed": self.seed, "dtype": str(self.dtype), "periods": n,
        }

    def _checkpoint(self, n: int) -> Checkpoint | None:
        if self.checkpoint_dir is None:
            return None
        path = self.checkpoint_dir / CHECKPOINT
        fix = f"delete {path} (or use another checkpoint_dir) to start afresh, or pass resume=False"
        return Checkpoint(path, self._fingerprint(n), owner="OSBLTrainer", fix=fix)

    # -- training ---------------------------------------------------------------------------------

    def _data(self, windows: Windows, where: str) -> tuple[Tensor, Tensor]:
        if windows.step != windows.horizon:
            raise ConfigError(
                f"OSBLTrainer.{where}: windows with step={windows.step} and horizon={windows.horizon}; the "
                "portfolio-vector memory needs consecutive periods: build them with step == horizon "
                "(in a backtest config, data.step = data.horizon)."
            )
        X = windows.X.to(self.device, self.dtype)
        self.model.check_input(X[:1], torch.zeros(1, X.shape[-1], device=self.device, dtype=self.dtype), where)
        y = period_relatives(windows).to(self.device, self.dtype)
        if not bool(torch.isfinite(X).all()) or not bool(torch.isfinite(y).all()) or (
            self.model.inputs == "prices" and not bool((X > 0).all())
        ):
            raise DataError(f"OSBLTrainer.{where}: the windows hold NaN or inf (or prices <= 0); clean the data before windowing.")
        return X, y

    def fit(self, train: Windows, val: Windows | None = None, resume: bool = False) -> OSBLHistory:
        """Train for ``steps`` OSBL steps on ``train``; with ``val``, also its reward (:meth:`evaluate`).

        Raises
        ------
        ConfigError
            Windows that are not consecutive periods, fewer periods than ``batch_size + 1``,
            ``resume`` without ``checkpoint_dir``, a checkpoint written with other settings.
        DataError
            Non-finite windows, or a non-finite reward (training diverged) -- the last good
            checkpoint is kept.
        """
        X, y = self._data(train, "fit")
        n, N = X.shape[0], X.shape[-1]
        if n < self.batch_size + 1:
            raise ConfigError(
                f"OSBLTrainer.fit: {n} training periods for batch_size={self.batch_size}; use a batch_size below {n} "
                "or more training data."
            )
        if resume and self.checkpoint_dir is None:
            raise ConfigError("OSBLTrainer.fit: resume=True needs a checkpoint_dir to resume from; pass checkpoint_dir=.")
        sampler = make_generator(self.seed)
        pvm = torch.zeros(n, N + 1, device=self.device, dtype=self.dtype)
        pvm[:, 0] = 1.0  # all cash
        history, start = OSBLHistory(), 0
        checkpoint = self._checkpoint(n)
        if resume and checkpoint is not None and checkpoint.exists():
            state = checkpoint.load(map_location=self.device)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            pvm = state["pvm"].to(self.device, self.dtype)
            sampler.set_state(state["sampler"].cpu())
            history = OSBLHistory(**state["history"])
            start = int(state["step"]) + 1
        self.pvm = pvm
        self.tracker.log_params({**{k: v for k, v in self._fingerprint(n).items() if k != "parameters"},
                                 "steps": self.steps, "start_step": start})
        cash = torch.zeros(N + 1, device=self.device, dtype=self.dtype)
        cash[0] = 1.0
        self.model.train()
        reported = len(history.reward)
        for step in range(start, self.steps):
            s = geometric_start(n - self.batch_size + 1, self.beta, sampler)
            idx = torch.arange(s, s + self.batch_size, device=self.device)
            w_before = pvm[s - 1] if s > 0 else cash
            y_before = y[s - 1] if s > 0 else torch.ones_like(cash)
            previous = torch.cat([w_before[None], pvm[idx[:-1]]])[:, 1:]
            self.optimizer.zero_grad(set_to_none=True)
            w = self.model.portfolio(X[idx], previous, validate=False)  # shapes and values checked by _data
            reward = self.reward(w, y[idx], w_before, y_before)
            if not bool(torch.isfinite(reward)):
                kept = (f"the checkpoint of the last good step stays at {checkpoint.path}" if checkpoint is not None
                        and checkpoint.exists() else "no checkpoint was written")
                raise DataError(
                    f"OSBLTrainer: the reward is {reward.item()} at step {step} (batch of periods {s}..{s + self.batch_size - 1}, "
                    f"dated {train.dates[s].date()} to {train.dates[s + self.batch_size - 1].date()}): the training "
                    f"diverged; {kept}. Lower lr or check the windows."
                )
            (-reward + self._penalty()).backward()
            self.optimizer.step()
            pvm[idx] = w.detach()
            history.reward.append(float(reward.detach()))
            history.starts.append(s)
            last = step == self.steps - 1
            if (step + 1) % self.checkpoint_every == 0 or last:
                if checkpoint is not None:
                    checkpoint.save({"step": step, "model": self.model.state_dict(),
                                     "optimizer": self.optimizer.state_dict(), "pvm": pvm,
                                     "sampler": sampler.get_state(), "history": asdict(history)})
                recent = history.reward[reported:]  # the steps since the last report
                reported = len(history.reward)
                mean = sum(recent) / len(recent)
                self.tracker.log_metrics({"reward": mean}, step=step)
                self.progress("training", step + 1, self.steps, f"reward {mean:.6f}")
        if val is not None:
            history.val_reward = self.evaluate(val)
        self.model.eval()
        return history

    @torch.no_grad()
    def evaluate(self, windows: Windows) -> float:
        """Mean log return net of costs when the model walks ``windows`` period after period from cash.

        The weights of each period are the model's (eval mode) given the previous period's;
        the first trade starts from cash.
        """
        X, y = self._data(windows, "evaluate")
        n, N = X.shape[0], X.shape[-1]
        was = self.model.training
        self.model.eval()
        try:
            w_prev = torch.zeros(N + 1, device=self.device, dtype=self.dtype)
            w_prev[0] = 1.0
            y_prev = torch.ones_like(w_prev)
            out = []
            for t in range(n):
                w = self.model.portfolio(X[t : t + 1], w_prev[None, 1:])[0]
                out.append(w)
                w_prev_drift = drift(w_prev[None], y_prev[None])
                mu = self.mu(w_prev_drift, w[None])[0]
                out[-1] = torch.log(mu * (y[t] * w).sum())
                w_prev, y_prev = w, y[t]
            return float(torch.stack(out).mean())
        finally:
            self.model.train(was)


__all__ = ["CHECKPOINT", "OSBLHistory", "OSBLTrainer", "geometric_probabilities", "geometric_start", "period_relatives"]
