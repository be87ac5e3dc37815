"""File-level configuration of hedging runs (``gradfolio hedge ... --config FILE``).

A YAML/TOML file with three sections, every field optional (defaults reproduce the paper)::

    env:            # gradfolio.hedging.config.EnvConfig (market, book, costs, action, reward)
      market: {sigma0: 0.3, nu: 0.3, beta: 0.5, rho: 0.2, rate: 0.0, dividend: 0.0}
      hedge_maturity_days: 30
      cost: 0.005
      client_maturity_days: 60      # or a list drawn from per order, e.g. [20, 40, 60, 90]
      client_moneyness: 1.0         # client strike = k x spot; or a list, e.g. [0.9, 1.1]
    evaluation:
      n_paths: 5000
      n_episodes: 1
      seed: 1234
      strategies: [delta, delta_gamma, delta_vega]
      valuation: slots              # or fused, or compiled (CPU): faster, equal to rounding
    output_dir: runs/hedge

Load it with :func:`load_hedging_config` (``gradfolio.experiments.config_io.load_config(HedgingConfig, path)``).

:class:`TrainerConfig` is the ``trainer:`` section of an agent run
(:class:`~gradfolio.experiments.hedging.train.HedgeTrainingConfig`): how to build the training and
validation environments (path counts, device, dtype) and the parameters of
:class:`gradfolio.hedging.rl.Trainer`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gradfolio.experiments.config_io import load_config
from gradfolio.hedging.config import BASELINES, BaselineName, EnvConfig, MarketConfig

if TYPE_CHECKING:
    from gradfolio.hedging.env import HedgingEnv


class EvaluationConfig(BaseModel):
    """How policies are evaluated: episodes, paths, seed, risk level and placement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_paths: int = Field(5000, gt=1, description="paths per episode batch")
    n_episodes: int = Field(1, gt=0, description="episode batches (seeds seed .. seed + n_episodes - 1)")
    seed: int = Field(1234, ge=0)
    strategies: list[BaselineName] = Field(default_factory=lambda: list(BASELINES), min_length=1)
    level: float = Field(0.95, gt=0, lt=1, description="VaR/CVaR confidence level")
    risk_aversion: float = Field(1.645, ge=0, description="c in mean - c * std")
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float64"
    valuation: Literal["slots", "fused", "compiled"] = Field(
        "slots", description="overnight valuation of the books: slot by slot (the published rows), fused, or compiled (CPU)")

    @model_validator(mode="after")
    def _check_valuation(self) -> EvaluationConfig:
        if self.valuation == "compiled" and self.device.split(":")[0] != "cpu":
            raise ValueError(f"valuation='compiled' runs on the CPU, device is {self.device!r}; "
                             "use valuation='fused' on this device, or device='cpu'")
        return self

    def make_env(self, env: EnvConfig) -> HedgingEnv:
        """The evaluation environment of ``env``: :attr:`n_paths` paths seeded with :attr:`seed`, on
        :attr:`device` in :attr:`dtype`, valued per :attr:`valuation` (``"fused"``: ``HedgingEnv(fused=True)``,
        ``"compiled"``: ``HedgingEnv(compiled=True)``, whose results agree with ``"slots"`` to rounding;
        docs/hedging.md, Speed)."""
        import torch

        from gradfolio.hedging.env import HedgingEnv

        return HedgingEnv(env, self.n_paths, seed=self.seed, device=self.device, dtype=getattr(torch, self.dtype),
                          fused=self.valuation == "fused", compiled=self.valuation == "compiled")


class TrainerConfig(BaseModel):
    """Rollouts, updates, exploration, validation, checkpoints and placement of a training run.

    :func:`gradfolio.experiments.hedging.train.build_trainer` builds the environments from
    ``n_paths``, ``val_paths``, ``device`` and ``dtype`` and passes the other fields
    (:meth:`trainer_kwargs`) to :class:`gradfolio.hedging.rl.Trainer`.

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
    transitions_per_update
        One update per this many collected transitions instead (``None``: ``updates_per_step``
        decides; Cao et al.: 8).
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
    threads
        Torch intra-op threads while the run trains and tests (``None``: torch's setting, i.e. the
        machine's core count). Default 1: the networks and batches are small, so a second thread
        gains little, and a fixed count makes the trained agent independent of the machine's core
        count (a different count changes the order of floating-point sums, hence the agent; see
        docs/hedging_agent.md, Reproducibility). Not part of the checkpoint's fingerprint.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_paths: int = Field(256, ge=1)
    n_episodes: int = Field(600, ge=1)
    trajectory_length: int = Field(1, ge=1)
    updates_per_step: int = Field(2, ge=1)
    transitions_per_update: int | None = Field(None, ge=1)
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
    threads: int | None = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> TrainerConfig:
        if self.warmup_episodes >= self.n_episodes:
            raise ValueError(
                f"warmup_episodes={self.warmup_episodes} leaves no training episode out of "
                f"n_episodes={self.n_episodes}; raise n_episodes above warmup_episodes"
            )
        return self

    def trainer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`gradfolio.hedging.rl.Trainer` (every field but those
        that say how to build the environments: ``n_paths``, ``val_paths``, ``device``, ``dtype``, and
        ``threads``, which the run applies around training; ``transitions_per_update`` only when set)."""
        kwargs = self.model_dump(exclude={"n_paths", "val_paths", "device", "dtype", "threads"})
        if kwargs["transitions_per_update"] is None:  # the Trainer's default; left out like Trainer.settings()
            del kwargs["transitions_per_update"]
        return kwargs


CAO_TRAINER: dict[str, Any] = {"noise_std": 0.3, "noise_std_end": 0.3, "transitions_per_update": 8}
"""The trainer settings of Cao et al.'s agent: constant exploration noise 0.3 (of ``a_max``) and one
update per 8 transitions (their replay's 256-transition batches at 32 samples per insert)."""


class HedgingConfig(BaseModel):
    """Everything a hedging run needs: the environment, the evaluation and the output folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: EnvConfig = EnvConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    output_dir: str = "runs/hedge"


def load_hedging_config(path: str | os.PathLike[str] | None) -> HedgingConfig:
    """The :class:`HedgingConfig` in ``path`` (YAML/TOML), or the paper's defaults when ``None``."""
    return HedgingConfig() if path is None else load_config(HedgingConfig, path)


__all__ = ["CAO_TRAINER", "HedgingConfig", "EvaluationConfig", "TrainerConfig", "EnvConfig", "MarketConfig", "load_hedging_config"]
