"""Train a :class:`~gradfolio.hedging.rl.agent.DistributionalAgent` on the vectorized hedging environment.

:class:`Trainer` receives built objects (the agent, the training environment and the validation
environment, see :func:`make_env` / :func:`make_agent`) and explicit, validated parameters; the
file-level settings (``TrainerConfig``: path counts, device, dtype) live in
:mod:`gradfolio.experiments.hedging.config` and are turned into these objects by
:func:`gradfolio.experiments.hedging.train.build_trainer`.

One training *episode* simulates ``env.n_paths`` market paths at once (seed
``TRAIN_SEED_OFFSET + 100_000 * seed + episode``, so every episode is reproducible on its own)
and plays them day by day. Each day adds ``n_paths`` transitions to the replay buffer; every
``trajectory_length`` days the agent makes ``trajectory_length * updates_per_step`` updates on
minibatches drawn from the buffer (with ``transitions_per_update = k``: one update per ``k``
transitions collected, the remainder carried over to the next phase). With the agent's
``n_step > 1`` the buffer receives ``n``-step transitions
(:class:`~gradfolio.hedging.rl.replay.NStepAccumulator`), each as soon as its window is complete. The first ``warmup_episodes`` act uniformly at random (no
updates); the feature scaler is then fitted on their states. Exploration adds Gaussian noise
whose standard deviation decays linearly from ``noise_std`` to ``noise_std_end``.

Every ``eval_every`` episodes the greedy policy is scored on a fixed validation episode
(``val_env.n_paths`` paths, seed ``VAL_SEED``, distinct from training and from the test seeds of
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

Checkpoints go through :class:`gradfolio.checkpoint.Checkpoint` (atomic, fingerprinted, read
with ``torch.load(weights_only=True)``, so a crafted file is refused without running code) at
the end of the first episode after every ``checkpoint_every`` updates; they hold the networks,
the optimizers, the replay buffer, the generators' states, the counters and the history, so a
run resumed from one continues exactly (bitwise on the CPU) as the uninterrupted run would have.
Progress is reported through a :class:`gradfolio.progress.Progress` callback and metrics go to a
:class:`gradfolio.tracking.Tracker`; nothing here draws (the command line's bars live in
:mod:`gradfolio.cli.progress`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from gradfolio.checkpoint import Checkpoint
from gradfolio.errors import ConfigError
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.env import HedgingEnv
from gradfolio.hedging.evaluation import pnl_metrics
from gradfolio.hedging.rl.agent import AgentConfig, DistributionalAgent, greek_feature_fn
from gradfolio.hedging.rl.losses import quantile_objective
from gradfolio.hedging.rl.replay import Batch, NStepAccumulator, ReplayBuffer
from gradfolio.progress import Progress, no_progress
from gradfolio.seeding import make_generator
from gradfolio.tracking import NullTracker, Tracker

TRAIN_SEED_OFFSET = 10_000_000
VAL_SEED = 999_999
CHECKPOINT_NAME = "checkpoint.pt"


def make_env(env_config: EnvConfig, n_paths: int, device: str | torch.device, dtype: torch.dtype) -> HedgingEnv:
    """The hedging environment of ``n_paths`` paths used for training and validation (a library helper:
    :class:`Trainer` takes any built :class:`HedgingEnv`)."""
    return HedgingEnv(env_config, n_paths, seed=0, device=device, dtype=dtype)


def make_agent(env: HedgingEnv, agent_config: AgentConfig, seed: int = 0) -> DistributionalAgent:
    """An untrained agent sized for ``env`` (its state width, action bound, device and dtype); ``seed``
    seeds the networks' initialisation."""
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
    agent
        The agent to train (:func:`make_agent`), on the device and in the dtype of ``env``.
    env
        The training environment: ``env.n_paths`` paths simulated in parallel per episode.
    val_env
        The validation environment (``val_env.n_paths >= 2`` paths, same market width, device and
        dtype as ``env``); ``None`` for no validation (then ``eval_every`` must be 0).
    n_episodes
        Training episodes (warm-up included); may change when resuming.
    trajectory_length
        Days collected between two update phases (the paper's trajectory length).
    updates_per_step
        Gradient updates per collected day.
    transitions_per_update
        ``None`` (default): ``updates_per_step`` decides. An integer ``k >= 1``: one update per ``k``
        transitions collected (``n_paths`` per day; Cao et al.: 8), replacing ``updates_per_step``.
    batch_size
        Transitions per update.
    buffer_capacity
        Replay buffer size (transitions).
    warmup_episodes
        Episodes of uniformly random actions before the first update (``1 <= warmup_episodes < n_episodes``).
    noise_std, noise_std_end
        Exploration noise (a fraction of ``a_max``) at the first and the last episode (``>= 0``).
    eval_every
        Validate the greedy policy every this many episodes (0: never).
    keep_best
        Restore the actor with the best validation score at the end.
    checkpoint_every
        Write a checkpoint at the end of the first episode after this many updates (0: never); may
        change when resuming.
    seed
        Seed of the exploration noise, the minibatches and the training episodes (the networks are
        seeded where the agent is built, :func:`make_agent`).
    checkpoint_dir
        Folder of ``checkpoint.pt``; ``None`` disables checkpoints. Resuming (:meth:`load`) checks
        that the environment settings and path counts, the agent settings, every parameter above
        but ``n_episodes`` and ``checkpoint_every``, and the dtype are those of the checkpoint (the
        device may change).
    tracker
        A :class:`gradfolio.tracking.Tracker` receiving the parameters and per-episode metrics
        (``NullTracker`` default).
    progress
        A :class:`gradfolio.progress.Progress` called after every episode as
        ``progress("training", episode, n_episodes, "upd 40  critic_loss 1.234  ...")`` (default: nothing).

    Raises
    ------
    ConfigError
        A parameter out of range (named), or an agent / validation environment that does not fit ``env``.
    """

    def __init__(
        self,
        agent: DistributionalAgent,
        env: HedgingEnv,
        val_env: HedgingEnv | None = None,
        *,
        n_episodes: int = 600,
        trajectory_length: int = 1,
        updates_per_step: int = 2,
        transitions_per_update: int | None = None,
        batch_size: int = 256,
        buffer_capacity: int = 200_000,
        warmup_episodes: int = 2,
        noise_std: float = 0.2,
        noise_std_end: float = 0.02,
        eval_every: int = 10,
        keep_best: bool = True,
        checkpoint_every: int = 1000,
        seed: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        tracker: Tracker | None = None,
        progress: Progress | None = None,
    ) -> None:
        _check_settings(
            n_episodes=n_episodes, trajectory_length=trajectory_length, updates_per_step=updates_per_step,
            batch_size=batch_size, buffer_capacity=buffer_capacity, warmup_episodes=warmup_episodes,
            noise_std=noise_std, noise_std_end=noise_std_end, eval_every=eval_every,
            checkpoint_every=checkpoint_every, seed=seed,
            transitions_per_update=1 if transitions_per_update is None else transitions_per_update,
        )
        _check_objects(agent, env, val_env, eval_every)
        self.agent, self.env, self.val_env = agent, env, val_env
        self.n_episodes, self.trajectory_length, self.updates_per_step = n_episodes, trajectory_length, updates_per_step
        self.batch_size, self.buffer_capacity, self.warmup_episodes = batch_size, buffer_capacity, warmup_episodes
        self.noise_std, self.noise_std_end, self.eval_every = noise_std, noise_std_end, eval_every
        self.keep_best, self.checkpoint_every, self.seed = keep_best, checkpoint_every, seed
        self.transitions_per_update = transitions_per_update
        self.buffer = ReplayBuffer(buffer_capacity, env.n_features, env.device, env.dtype)
        self.n_step = NStepAccumulator(agent.config.n_step, agent.config.gamma)
        self.spare_transitions = 0
        self.noise_gen = make_generator(seed + 1, env.device)
        self.sample_gen = make_generator(seed + 2, env.device)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.tracker: Tracker = tracker if tracker is not None else NullTracker()
        self.progress: Progress = progress if progress is not None else no_progress
        self.episode = 0
        self.updates = 0
        self.pending_days = 0
        self.last_checkpoint = 0
        self.history: list[dict[str, float]] = []
        self.best: tuple[float, dict[str, torch.Tensor]] | None = None

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path | None:
        """Where checkpoints go (``None`` without a checkpoint folder)."""
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def settings(self) -> dict[str, Any]:
        """The training parameters (logged to the tracker; all but ``n_episodes`` and
        ``checkpoint_every`` are part of the checkpoint's fingerprint)."""
        settings: dict[str, Any] = {
            "n_episodes": self.n_episodes, "trajectory_length": self.trajectory_length,
            "updates_per_step": self.updates_per_step, "batch_size": self.batch_size,
            "buffer_capacity": self.buffer_capacity, "warmup_episodes": self.warmup_episodes,
            "noise_std": self.noise_std, "noise_std_end": self.noise_std_end, "eval_every": self.eval_every,
            "keep_best": self.keep_best, "checkpoint_every": self.checkpoint_every, "seed": self.seed,
        }
        if self.transitions_per_update is not None:  # absent by default: older checkpoints still resume
            settings["transitions_per_update"] = self.transitions_per_update
        return settings

    def fingerprint(self) -> dict[str, Any]:
        """What a resumed run must share with the checkpoint it resumes (not the device)."""
        trainer = {k: v for k, v in self.settings().items() if k not in ("n_episodes", "checkpoint_every")}
        return {
            "env": self.env.config.model_dump(mode="json"), "n_paths": self.env.n_paths,
            "val_paths": None if self.val_env is None else self.val_env.n_paths,
            "agent": _agent_fingerprint(self.agent.config), "trainer": trainer, "dtype": str(self.env.dtype),
        }

    def _checkpoint(self, path: str | os.PathLike[str] | None, action: str) -> Checkpoint:
        target = Path(path) if path is not None else self.checkpoint_path
        if target is None:
            raise ConfigError(f"Trainer.{action}(): no checkpoint folder; pass checkpoint_dir= to the Trainer or a path.")
        fix = (f"start a new run folder for different settings (only n_episodes, checkpoint_every and the device "
               f"may change on resume), or delete {target}")
        return Checkpoint(target, self.fingerprint(), owner="Trainer", fix=fix)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the full training state atomically (default: ``checkpoint_dir / "checkpoint.pt"``)."""
        checkpoint = self._checkpoint(path, "save")
        state = {
            "agent": self.agent.full_state_dict(), "buffer": self.buffer.state_dict(),
            "noise_gen": self.noise_gen.get_state(), "sample_gen": self.sample_gen.get_state(),
            "episode": self.episode, "updates": self.updates, "pending_days": self.pending_days,
            "history": self.history, "best": self.best, "spare_transitions": self.spare_transitions,
        }
        self.last_checkpoint = self.updates
        return checkpoint.save(state)

    def load(self, path: str | os.PathLike[str] | None = None) -> None:
        """Restore a checkpoint written by :meth:`save` for the same settings (``n_episodes``,
        ``checkpoint_every`` and the device may differ).

        Raises
        ------
        ConfigError
            No checkpoint there; a truncated, foreign or unsafe file (refused unread); a checkpoint
            written with other settings (each named, with its saved and current value).
        """
        state = self._checkpoint(path, "load").load(map_location=self.env.device)
        self.agent.load_full_state_dict(state["agent"])
        self.buffer.load_state_dict(state["buffer"])
        self.noise_gen.set_state(state["noise_gen"].cpu())
        self.sample_gen.set_state(state["sample_gen"].cpu())
        self.episode, self.updates = state["episode"], state["updates"]
        self.pending_days, self.history, self.best = state["pending_days"], state["history"], state["best"]
        self.spare_transitions = int(state.get("spare_transitions", 0))
        self.last_checkpoint = self.updates

    # ------------------------------------------------------------------ training
    def noise(self) -> float:
        """Exploration noise of the current episode (linear decay)."""
        span = max(self.n_episodes - self.warmup_episodes - 1, 1)
        frac = min(max(self.episode - self.warmup_episodes, 0) / span, 1.0)
        return self.noise_std + frac * (self.noise_std_end - self.noise_std)

    def _update_phase(self, n_updates: int) -> dict[str, float]:
        logs: dict[str, float] = {}
        for _ in range(n_updates):
            logs = self.agent.update(self.buffer.sample(self.batch_size, self.sample_gen))
            self.updates += 1
        return logs

    def _n_updates_due(self) -> int:
        """Updates of this phase: ``pending_days * updates_per_step``, or one per ``transitions_per_update``."""
        if self.transitions_per_update is None:
            return self.pending_days * self.updates_per_step
        collected = self.spare_transitions + self.pending_days * self.env.n_paths
        self.spare_transitions = collected % self.transitions_per_update
        return collected // self.transitions_per_update

    def run_episode(self) -> dict[str, float]:
        """Play one training episode on every path, updating the agent as configured; returns its log row."""
        env, agent = self.env, self.agent
        warmup = self.episode < self.warmup_episodes
        state = env.reset(TRAIN_SEED_OFFSET + 100_000 * self.seed + self.episode)
        done = torch.zeros(env.n_paths, dtype=torch.bool, device=env.device)
        total = torch.zeros(env.n_paths, dtype=env.dtype, device=env.device)
        logs: dict[str, float] = {}
        while not bool(done.all()):
            if warmup:
                action = env.action_high * torch.rand(env.n_paths, generator=self.noise_gen, device=env.device, dtype=env.dtype)
            else:
                action = agent.act(state, self.noise(), self.noise_gen)
            next_state, reward, done, info = env.step(action)
            for transitions in self.n_step.push(Batch(state, action, reward, next_state, done.to(env.dtype))):
                self.buffer.add(transitions)
            total += info["pnl"]
            state = next_state
            if not warmup:
                self.pending_days += 1
                if self.pending_days >= self.trajectory_length:
                    logs = self._update_phase(self._n_updates_due())
                    self.pending_days = 0
        self.episode += 1
        if self.episode == self.warmup_episodes:
            agent.fit_scaler(self.buffer.state[: len(self.buffer)])
        row = {"episode": float(self.episode), "updates": float(self.updates), "noise": self.noise(),
               "train_pnl_mean": float(total.mean()), "train_pnl_std": float(total.std()), **logs}
        if self.val_env is not None and self.eval_every and not warmup and self.episode % self.eval_every == 0:
            row.update(self._validate(self.val_env))
        self.history.append(row)
        self.tracker.log_metrics(row, step=self.episode)
        return row

    def _validate(self, val_env: HedgingEnv) -> dict[str, float]:
        """Score (and with ``keep_best`` snapshot) the actor at the iterates ``theta^r`` on ``val_env``."""
        with self.agent.at_iterates():
            score, metrics = validation_score(self.agent, val_env)
            if self.keep_best and (self.best is None or score > self.best[0]):
                self.best = (score, {k: v.detach().clone() for k, v in self.agent.actor.state_dict().items()})
        return {"val_score": score, **{f"val_{k}": v for k, v in metrics.items()}}

    def train(self) -> DistributionalAgent:
        """Run the remaining episodes (checkpointing as configured) and return the trained agent.

        Logs :meth:`settings` (and ``start_episode``) to the tracker, then after every episode its
        metrics and ``progress("training", episode, n_episodes, info)``. The returned agent holds
        the iterates ``theta^r`` (with ANA), then, with ``keep_best``, the best validated actor.
        Call :meth:`load` first to continue a checkpointed run.
        """
        self.tracker.log_params({**self.settings(), "start_episode": self.episode})
        while self.episode < self.n_episodes:
            row = self.run_episode()
            if self.checkpoint_path is not None and self.checkpoint_every and (
                self.updates - self.last_checkpoint >= self.checkpoint_every or self.episode == self.n_episodes
            ):
                self.save()
            self.progress("training", self.episode, self.n_episodes, describe(row))
        self.agent.use_iterates()
        if self.keep_best and self.best is not None:
            self.agent.actor.load_state_dict(self.best[1])
        return self.agent


_LATER_AGENT_FIELDS = ("actor_hidden", "critic_hidden", "actor_layer_norm", "critic_layer_norm", "taus", "n_step",
                       "target_update", "target_period", "grad_clip", "quantile_reduction")


def _agent_fingerprint(config: AgentConfig) -> dict[str, Any]:
    """The agent settings of a checkpoint's fingerprint; the options added with Cao et al.'s agent are
    left out at their defaults, so checkpoints written before they existed still resume."""
    data = config.model_dump(mode="json")
    defaults = AgentConfig().model_dump(mode="json")
    return {k: v for k, v in data.items() if not (k in _LATER_AGENT_FIELDS and v == defaults[k])}


def describe(row: dict[str, float]) -> str:
    """The progress line of an episode's log row: ``"upd 40  critic_loss 1.234  actor_objective -0.567"``."""
    parts = [f"upd {int(row['updates'])}"]
    for key in ("critic_loss", "actor_objective", "val_score"):
        if key in row and math.isfinite(row[key]):
            parts.append(f"{key} {row[key]:.3f}")
    return "  ".join(parts)


def _check_settings(**values: float) -> None:
    """Raise a :class:`ConfigError` naming every parameter out of range."""
    minimum = {"n_episodes": 1, "trajectory_length": 1, "updates_per_step": 1, "batch_size": 1, "buffer_capacity": 1,
               "warmup_episodes": 1, "noise_std": 0, "noise_std_end": 0, "eval_every": 0, "checkpoint_every": 0,
               "seed": 0, "transitions_per_update": 1}
    bad = [f"{name}={values[name]!r} (must be >= {low})" for name, low in minimum.items() if not values[name] >= low]
    if values["warmup_episodes"] >= values["n_episodes"]:
        bad.append(f"warmup_episodes={values['warmup_episodes']} leaves no training episode out of "
                   f"n_episodes={values['n_episodes']} (raise n_episodes above warmup_episodes)")
    if bad:
        raise ConfigError(f"Trainer: {'; '.join(bad)}.")


def _check_objects(agent: DistributionalAgent, env: HedgingEnv, val_env: HedgingEnv | None, eval_every: int) -> None:
    """Raise a :class:`ConfigError` if the agent or the validation environment does not fit ``env``."""
    if agent.n_state != env.n_features or agent.dtype != env.dtype or agent.taus.device != env.device:
        raise ConfigError(
            f"Trainer: agent (state width {agent.n_state}, {agent.dtype}, {agent.taus.device}) does not fit env "
            f"(state width {env.n_features}, {env.dtype}, {env.device}); build it with make_agent(env, ...)."
        )
    if val_env is None:
        if eval_every:
            raise ConfigError(f"Trainer: eval_every={eval_every} needs a val_env; pass val_env= or eval_every=0.")
        return
    if val_env.n_paths < 2:
        raise ConfigError(f"Trainer: val_env has {val_env.n_paths} path; validation needs >= 2 (its std and CVaR).")
    if (val_env.n_features, val_env.dtype, val_env.device) != (env.n_features, env.dtype, env.device):
        raise ConfigError(
            f"Trainer: val_env (state width {val_env.n_features}, {val_env.dtype}, {val_env.device}) differs from env "
            f"(state width {env.n_features}, {env.dtype}, {env.device}); build both with make_env on one device and dtype."
        )


__all__ = [
    "Trainer", "make_env", "make_agent", "validation_score", "describe", "TRAIN_SEED_OFFSET", "VAL_SEED",
    "CHECKPOINT_NAME",
]
