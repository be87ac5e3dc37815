"""Train a deep hedger by backpropagating the risk of the simulated P&L (:mod:`gradfolio.hedging.deep`).

:class:`DeepHedgeTrainer` receives a policy network and a :data:`~gradfolio.hedging.deep.Simulator`
(``simulate(policy, seed) -> total P&L (paths,)``, differentiable). Step ``k`` simulates a fresh
batch of paths (seed ``TRAIN_SEED_OFFSET + 100_000 * seed + k``, the RL trainer's convention, so
every step is reproducible on its own), computes ``risk(P&L)`` and takes one Adam step on it.
Every ``eval_every`` steps the policy is scored on a fixed validation batch (seed ``VAL_SEED``,
the RL trainer's) without gradients; with ``keep_best`` the best policy is restored at the end.

Checkpoints go through :class:`gradfolio.checkpoint.Checkpoint` (atomic, fingerprinted, read with
``weights_only=True``) every ``checkpoint_every`` steps and at the end: the policy, Adam's state,
the step counter, the history and the best snapshot; a resumed run continues exactly (bitwise on
the CPU). Progress goes to a :class:`gradfolio.progress.Progress` callback, metrics to a
:class:`gradfolio.tracking.Tracker`, and ``history`` records the wall-clock seconds of every
logged step (``seconds``) for time-to-risk comparisons.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradfolio.checkpoint import Checkpoint
from gradfolio.errors import ConfigError
from gradfolio.hedging.deep import DeepHedgeConfig, Simulator, describe, pnl_risk
from gradfolio.hedging.rl.training import TRAIN_SEED_OFFSET, VAL_SEED
from gradfolio.progress import Progress, no_progress
from gradfolio.tracking import NullTracker, Tracker

CHECKPOINT_NAME = "deep_checkpoint.pt"


class DeepHedgeTrainer:
    """Descends ``risk(P&L)`` of a policy through a differentiable simulator, step by step.

    Parameters
    ----------
    policy
        The network to train (e.g. :class:`~gradfolio.hedging.deep.EnvPolicy`, its scaler fitted).
    simulate
        ``simulate(policy, seed) -> (paths,)`` total P&L with gradients (training batches).
    config
        Risk measure and learning rate (:class:`~gradfolio.hedging.deep.DeepHedgeConfig`).
    val_simulate
        The validation batch's simulator (``None``: no validation; then ``eval_every`` must be 0).
    n_steps
        Gradient steps (may change when resuming).
    eval_every
        Validate every this many steps (0: never).
    keep_best
        Restore the policy with the lowest validation risk at the end.
    checkpoint_every
        Checkpoint every this many steps and at the last one (0: never) when ``checkpoint_dir`` is set.
    seed
        Seed of the training batches (the network is seeded where it is built).
    checkpoint_dir
        Folder of ``deep_checkpoint.pt`` (``None``: no checkpoints).
    fingerprint
        Extra plain data a resumed run must share (e.g. the environment settings).
    tracker, progress
        Metrics sink and progress callback (``progress("deep hedging", step, n_steps, info)``).
    """

    def __init__(
        self,
        policy: nn.Module,
        simulate: Simulator,
        config: DeepHedgeConfig | None = None,
        val_simulate: Simulator | None = None,
        *,
        n_steps: int = 500,
        eval_every: int = 10,
        keep_best: bool = True,
        checkpoint_every: int = 100,
        seed: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        fingerprint: dict[str, Any] | None = None,
        tracker: Tracker | None = None,
        progress: Progress | None = None,
    ) -> None:
        bad = [f"{k}={v} (must be >= {low})" for k, v, low in (
            ("n_steps", n_steps, 1), ("eval_every", eval_every, 0), ("checkpoint_every", checkpoint_every, 0),
            ("seed", seed, 0)) if not v >= low]
        if eval_every and val_simulate is None:
            bad.append(f"eval_every={eval_every} needs a val_simulate (pass one or eval_every=0)")
        if bad:
            raise ConfigError(f"DeepHedgeTrainer: {'; '.join(bad)}.")
        self.policy, self.simulate, self.val_simulate = policy, simulate, val_simulate
        self.config = cfg = config if config is not None else DeepHedgeConfig()
        self.n_steps, self.eval_every, self.keep_best = n_steps, eval_every, keep_best
        self.checkpoint_every, self.seed = checkpoint_every, seed
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.extra_fingerprint = dict(fingerprint or {})
        self.tracker: Tracker = tracker if tracker is not None else NullTracker()
        self.progress: Progress = progress if progress is not None else no_progress
        self.step = 0
        self.seconds = 0.0
        self.history: list[dict[str, float]] = []
        self.best: tuple[float, dict[str, torch.Tensor]] | None = None

    def risk(self, pnl: torch.Tensor) -> torch.Tensor:
        """The configured risk of a P&L batch ``(paths,)`` (scalar, lower is better)."""
        cfg = self.config
        return pnl_risk(pnl, cfg.risk, cfg.level, cfg.risk_aversion)

    # ------------------------------------------------------------------ checkpoints
    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must share with its checkpoint (not ``n_steps``, ``checkpoint_every``, device)."""
        return {"config": self.config.model_dump(mode="json"), "policy": describe(self.policy),
                "eval_every": self.eval_every, "keep_best": self.keep_best, "seed": self.seed, **self.extra_fingerprint}

    def _checkpoint(self) -> Checkpoint:
        if self.checkpoint_dir is None:
            raise ConfigError("DeepHedgeTrainer: no checkpoint folder; pass checkpoint_dir=.")
        path = self.checkpoint_dir / CHECKPOINT_NAME
        return Checkpoint(path, self.fingerprint(), owner="DeepHedgeTrainer",
                          fix=f"start a new folder for different settings, or delete {path}")

    def save(self) -> Path:
        """Write the policy, Adam's state, the counters, the history and the best snapshot."""
        return self._checkpoint().save({
            "policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(), "step": self.step,
            "seconds": self.seconds, "history": self.history, "best": self.best,
        })

    def load(self) -> None:
        """Restore :meth:`save`'s state (a ``ConfigError`` for a missing, unsafe or foreign checkpoint)."""
        state = self._checkpoint().load()
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.seconds = state["step"], state["seconds"]
        self.history, self.best = state["history"], state["best"]

    # ------------------------------------------------------------------ training
    def validate(self) -> float:
        """Risk of the current policy on the validation batch (no gradients)."""
        if self.val_simulate is None:
            raise ConfigError("DeepHedgeTrainer.validate(): no val_simulate; pass one to the trainer.")
        with torch.no_grad():
            return float(self.risk(self.val_simulate(self.policy, VAL_SEED)))

    def train_step(self) -> dict[str, float]:
        """One gradient step on a fresh batch; returns its log row."""
        start = time.perf_counter()
        pnl = self.simulate(self.policy, TRAIN_SEED_OFFSET + 100_000 * self.seed + self.step)
        loss = self.risk(pnl)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        self.seconds += time.perf_counter() - start
        row = {"step": float(self.step), "seconds": self.seconds, "train_risk": float(loss.detach()),
               "train_pnl_mean": float(pnl.detach().mean())}
        if self.eval_every and self.step % self.eval_every == 0:
            score = self.validate()
            row["val_risk"] = score
            if self.keep_best and (self.best is None or score < self.best[0]):
                self.best = (score, {k: v.detach().clone() for k, v in self.policy.state_dict().items()})
        return row

    def train(self) -> nn.Module:
        """Run the remaining steps (checkpointing as configured); return the policy (the best one with ``keep_best``)."""
        self.tracker.log_params({**self.config.model_dump(), "n_steps": self.n_steps, "seed": self.seed,
                                 "start_step": self.step})
        while self.step < self.n_steps:
            row = self.train_step()
            self.history.append(row)
            self.tracker.log_metrics(row, step=self.step)
            if self.checkpoint_dir is not None and self.checkpoint_every and (
                self.step % self.checkpoint_every == 0 or self.step == self.n_steps
            ):
                self.save()
            info = f"risk {row['train_risk']:.3f}" + (f"  val {row['val_risk']:.3f}" if "val_risk" in row else "")
            self.progress("deep hedging", self.step, self.n_steps, info)
        if self.keep_best and self.best is not None:
            self.policy.load_state_dict(self.best[1])
        return self.policy


def seconds_to_reach(history: list[dict[str, float]], target: float, key: str = "val_risk") -> float | None:
    """Wall-clock seconds of the first logged row whose ``key`` is ``<= target`` (``None`` if never)."""
    for row in history:
        if key in row and row[key] <= target:
            return row["seconds"]
    return None


__all__ = ["DeepHedgeTrainer", "seconds_to_reach", "CHECKPOINT_NAME"]
