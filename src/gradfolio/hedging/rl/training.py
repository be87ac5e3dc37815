"""Train a :class:`~gradfolio.hedging.rl.agent.DistributionalAgent` on the vectorized hedging environment.

One training *episode* simulates ``n_paths`` market paths at once (seed
``TRAIN_SEED_OFFSET + 100_000 * seed + episode``, so every episode is reproducible on its own)
and plays them day by day. Each day adds ``n_paths`` transitions to the replay buffer; every
``trajectory_length`` days the agent makes ``trajectory_length * updates_per_step`` updates on
minibatches drawn from the buffer. The first ``warmup_episodes`` act uniformly at random (no
updates); the feature scaler is then fitted on their states. Exploration adds Gaussian noise
whose standard deviation decays linearly from ``noise_std`` to ``noise_std_end``.

Every ``eval_every`` episodes the greedy policy is scored on a fixed validation episode
(``val_paths`` paths, seed ``VAL_SEED``, distinct from training and from the test seeds of
:mod:`gradfolio.hedging.evaluation` runs) with the actor's own objective applied to the total P&L;
with ``keep_best`` the best actor is restored at the end.

**ANA's two points.** With ANA the parameters hold the look-ahead point ``y_r`` between updates
and the optimizer holds the iterate ``theta^r``. Validation and the ``keep_best`` snapshots use
``theta^r`` (:meth:`DistributionalAgent.at_iterates`), the target networks average ``theta^r``
(:meth:`DistributionalAgent.update`), and :meth:`Trainer.train` ends by putting ``theta^r`` into
the networks (:meth:`DistributionalAgent.use_iterates`), so the returned and saved agent and the
test evaluation are at the iterates. Exploration during training acts at ``y_r``, the point
where the next gradient is taken: it differs from ``theta^r`` by one momentum step, far less
than the exploration noise, and swapping every simulated day would cost two parameter copies
per day. Checkpoints keep ``y_r`` in the networks, so a resumed run continues exactly.

Checkpoints are written atomically (:func:`gradfolio.io.save_checkpoint`) at the end of the first
episode after every ``checkpoint_every`` updates; they hold the networks, the optimizers, the
replay buffer, the generators' states, the counters and the history, so a run resumed from one
continues exactly (bitwise on the CPU) as the uninterrupted run would have.
"""

from __future__ import annotations

import math
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gradfolio.errors import ConfigError
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.env import HedgingEnv
from gradfolio.hedging.evaluation import pnl_metrics
from gradfolio.hedging.rl.agent import AgentConfig, DistributionalAgent, greek_feature_fn
from gradfolio.hedging.rl.losses import quantile_objective
from gradfolio.hedging.rl.replay import Batch, ReplayBuffer
from gradfolio.io import load_checkpoint, save_checkpoint
from gradfolio.seeding import make_generator, resolve_device
from gradfolio.tracking import NullTracker

TRAIN_SEED_OFFSET = 10_000_000
VAL_SEED = 999_999
CHECKPOINT_NAME = "checkpoint.pt"


class TrainerConfig(BaseModel):
    """Rollouts, updates, exploration, validation, checkpoints and placement of a training run.

    Attributes
    ----------
    n_paths
        Paths simulated in parallel per training episode.
    n_episodes
        Training episodes (warm-up included).
    trajectory_length
        Days collected between two update phases (the paper's trajectory length).
    updates_per_step
        Gradient updates per collected day.
    batch_size
        Transitions per update.
    buffer_capacity
        Replay buffer size (transitions).
    warmup_episodes
        Episodes of uniformly random actions before the first update.
    noise_std, noise_std_end
        Exploration noise (a fraction of ``a_max``) at the first and the last episode.
    eval_every
        Validate the greedy policy every this many episodes (0: never).
    val_paths
        Paths of the validation episode.
    keep_best
        Restore the actor with the best validation score at the end.
    checkpoint_every
        Write a checkpoint at the end of the first episode after this many updates (0: never).
    seed
        Seed of the networks, the exploration noise, the minibatches and the training episodes.
    device, dtype
        Where and in which precision the environment, buffer and networks live.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_paths: int = Field(256, ge=1)
    n_episodes: int = Field(600, ge=1)
    trajectory_length: int = Field(1, ge=1)
    updates_per_step: int = Field(2, ge=1)
    batch_size: int = Field(256, ge=1)
    buffer_capacity: int = Field(200_000, ge=1)
    warmup_episodes: int = Field(2, ge=1)
    noise_std: float = Field(0.2, ge=0)
    noise_std_end: float = Field(0.02, ge=0)
    eval_every: int = Field(10, ge=0)
    val_paths: int = Field(2000, ge=2)
    keep_best: bool = True
    checkpoint_every: int = Field(1000, ge=0)
    seed: int = Field(0, ge=0)
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"

    @model_validator(mode="after")
    def _check(self) -> TrainerConfig:
        if self.warmup_episodes >= self.n_episodes:
            raise ValueError(
                f"warmup_episodes={self.warmup_episodes} leaves no training episode out of "
                f"n_episodes={self.n_episodes}; raise n_episodes above warmup_episodes"
            )
        return self


def make_env(env_config: EnvConfig, n_paths: int, device: str | torch.device, dtype: torch.dtype) -> HedgingEnv:
    """The hedging environment used for training and validation."""
    return HedgingEnv(env_config, n_paths, seed=0, device=device, dtype=dtype)


def make_agent(env: HedgingEnv, agent_config: AgentConfig, seed: int = 0) -> DistributionalAgent:
    """An untrained agent sized for ``env`` (its state width, action bound, device and dtype)."""
    extra = greek_feature_fn(env) if agent_config.greek_features else None
    return DistributionalAgent(
        env.n_features, env.action_high, agent_config, extra_features=extra, n_extra=2 if extra else 0,
        seed=seed, device=env.device, dtype=env.dtype,
    )


def validation_score(agent: DistributionalAgent, env: HedgingEnv) -> tuple[float, dict[str, float]]:
    """Greedy policy on the validation episode: (the actor's objective of the total P&L, its P&L summary)."""
    total = env.run_episode(agent.policy, VAL_SEED).total_pnl
    cfg = agent.config
    score = float(quantile_objective(total.double(), cfg.objective, cfg.risk_aversion, cfg.level))
    return score, pnl_metrics(total)


class Trainer:
    """Holds everything a run needs and advances it episode by episode.

    Parameters
    ----------
    env_config, agent_config, config
        Environment, agent and trainer settings.
    run_dir
        Folder of the checkpoint (``run_dir / "checkpoint.pt"``); ``None`` disables checkpoints.
    tracker
        MLflow tracker (or :class:`~gradfolio.tracking.NullTracker`) receiving per-episode metrics.
    """

    def __init__(
        self,
        env_config: EnvConfig,
        agent_config: AgentConfig,
        config: TrainerConfig,
        run_dir: str | os.PathLike[str] | None = None,
        tracker: NullTracker | None = None,
    ) -> None:
        self.env_config, self.agent_config, self.config = env_config, agent_config, config
        device, dtype = resolve_device(config.device), getattr(torch, config.dtype)
        self.env = make_env(env_config, config.n_paths, device, dtype)
        self.val_env = make_env(env_config, config.val_paths, device, dtype)
        self.agent = make_agent(self.env, agent_config, config.seed)
        self.buffer = ReplayBuffer(config.buffer_capacity, self.env.n_features, device, dtype)
        self.noise_gen = make_generator(config.seed + 1, device)
        self.sample_gen = make_generator(config.seed + 2, device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.tracker = tracker if tracker is not None else NullTracker()
        self.episode = 0
        self.updates = 0
        self.pending_days = 0
        self.last_checkpoint = 0
        self.history: list[dict[str, float]] = []
        self.best: tuple[float, dict[str, torch.Tensor]] | None = None

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path | None:
        """Where checkpoints go (``None`` without a run folder)."""
        return None if self.run_dir is None else self.run_dir / CHECKPOINT_NAME

    def _configs(self) -> dict[str, Any]:
        return {"env": self.env_config.model_dump(mode="json"), "agent": self.agent_config.model_dump(mode="json"),
                "trainer": self.config.model_dump(mode="json", exclude={"n_episodes", "device", "checkpoint_every"})}

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the full training state atomically (default: the run folder's checkpoint)."""
        target = Path(path) if path is not None else self.checkpoint_path
        if target is None:
            raise ConfigError("Trainer.save(): no run folder; pass run_dir to the Trainer or a path.")
        state = {
            "configs": self._configs(), "agent": self.agent.full_state_dict(), "buffer": self.buffer.state_dict(),
            "noise_gen": self.noise_gen.get_state(), "sample_gen": self.sample_gen.get_state(),
            "episode": self.episode, "updates": self.updates, "pending_days": self.pending_days,
            "history": self.history, "best": self.best,
        }
        self.last_checkpoint = self.updates
        return save_checkpoint(target, state)

    def load(self, path: str | os.PathLike[str] | None = None) -> None:
        """Restore a checkpoint written by :meth:`save` for the same settings (``n_episodes`` may differ)."""
        source = Path(path) if path is not None else self.checkpoint_path
        if source is None or not source.is_file():
            raise ConfigError(f"no checkpoint at {source}; train without --resume first.")
        state = load_checkpoint(source, map_location=self.env.device)
        if state["configs"] != self._configs():
            raise ConfigError(
                f"{source}: the checkpoint was written with different settings; resume with the same config "
                "(only n_episodes, device and checkpoint_every may change) or start a new run folder."
            )
        self.agent.load_full_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        self.noise_gen.set_state(state["noise_gen"].cpu())
        self.sample_gen.set_state(state["sample_gen"].cpu())
        self.episode, self.updates = state["episode"], state["updates"]
        self.pending_days, self.history, self.best = state["pending_days"], state["history"], state["best"]
        self.last_checkpoint = self.updates

    # ------------------------------------------------------------------ training
    def noise(self) -> float:
        """Exploration noise of the current episode (linear decay)."""
        cfg = self.config
        span = max(cfg.n_episodes - cfg.warmup_episodes - 1, 1)
        frac = min(max(self.episode - cfg.warmup_episodes, 0) / span, 1.0)
        return cfg.noise_std + frac * (cfg.noise_std_end - cfg.noise_std)

    def _update_phase(self, n_updates: int) -> dict[str, float]:
        logs: dict[str, float] = {}
        for _ in range(n_updates):
            logs = self.agent.update(self.buffer.sample(self.config.batch_size, self.sample_gen))
            self.updates += 1
        return logs

    def run_episode(self) -> dict[str, float]:
        """Play one training episode on every path, updating the agent as configured; returns its log row."""
        cfg, env, agent = self.config, self.env, self.agent
        warmup = self.episode < cfg.warmup_episodes
        state = env.reset(TRAIN_SEED_OFFSET + 100_000 * cfg.seed + self.episode)
        done = torch.zeros(env.n_paths, dtype=torch.bool, device=env.device)
        total = torch.zeros(env.n_paths, dtype=env.dtype, device=env.device)
        logs: dict[str, float] = {}
        while not bool(done.all()):
            if warmup:
                action = env.action_high * torch.rand(env.n_paths, generator=self.noise_gen, device=env.device, dtype=env.dtype)
            else:
                action = agent.act(state, self.noise(), self.noise_gen)
            next_state, reward, done, info = env.step(action)
            self.buffer.add(Batch(state, action, reward, next_state, done.to(env.dtype)))
            total += info["pnl"]
            state = next_state
            if not warmup:
                self.pending_days += 1
                if self.pending_days >= cfg.trajectory_length:
                    logs = self._update_phase(self.pending_days * cfg.updates_per_step)
                    self.pending_days = 0
        self.episode += 1
        if self.episode == cfg.warmup_episodes:
            agent.fit_scaler(self.buffer.state[: len(self.buffer)])
        row = {"episode": float(self.episode), "updates": float(self.updates), "noise": self.noise(),
               "train_pnl_mean": float(total.mean()), "train_pnl_std": float(total.std()), **logs}
        if cfg.eval_every and not warmup and self.episode % cfg.eval_every == 0:
            row.update(self._validate())
        self.history.append(row)
        self.tracker.log_metrics(row, step=self.episode)
        return row

    def _validate(self) -> dict[str, float]:
        """Score (and with ``keep_best`` snapshot) the actor at the iterates ``theta^r``."""
        with self.agent.at_iterates():
            score, metrics = validation_score(self.agent, self.val_env)
            if self.config.keep_best and (self.best is None or score > self.best[0]):
                self.best = (score, {k: v.detach().clone() for k, v in self.agent.actor.state_dict().items()})
        return {"val_score": score, **{f"val_{k}": v for k, v in metrics.items()}}

    def train(self, progress: bool = False) -> DistributionalAgent:
        """Run the remaining episodes (checkpointing as configured) and return the trained agent.

        The returned agent holds the iterates ``theta^r`` (with ANA), then, with ``keep_best``,
        the best validated actor.

        Parameters
        ----------
        progress
            Show a rich progress bar with the latest losses.
        """
        cfg = self.config
        bar_ctx = _progress() if progress else nullcontext(None)
        with bar_ctx as bar:
            task = bar.add_task("training", total=cfg.n_episodes, completed=self.episode, info="") if bar else None
            while self.episode < cfg.n_episodes:
                row = self.run_episode()
                if self.checkpoint_path is not None and cfg.checkpoint_every and (
                    self.updates - self.last_checkpoint >= cfg.checkpoint_every or self.episode == cfg.n_episodes
                ):
                    self.save()
                if bar is not None:
                    bar.update(task, completed=self.episode, info=_describe(row))
        self.agent.use_iterates()
        if cfg.keep_best and self.best is not None:
            self.agent.actor.load_state_dict(self.best[1])
        return self.agent


def _describe(row: dict[str, float]) -> str:
    parts = [f"upd {int(row['updates'])}"]
    for key in ("critic_loss", "actor_objective", "val_score"):
        if key in row and math.isfinite(row[key]):
            parts.append(f"{key} {row[key]:.3f}")
    return "  ".join(parts)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[info]}"), transient=False)


__all__ = ["TrainerConfig", "Trainer", "make_env", "make_agent", "validation_score", "TRAIN_SEED_OFFSET", "VAL_SEED"]
