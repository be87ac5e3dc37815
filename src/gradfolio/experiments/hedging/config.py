"""File-level configuration of hedging runs (``gradfolio hedge ... --config FILE``).

A YAML/TOML file with three sections, every field optional (defaults reproduce the paper)::

    env:            # gradfolio.hedging.config.EnvConfig (market, book, costs, action, reward)
      market: {sigma0: 0.3, nu: 0.3, beta: 0.5, rho: 0.2}
      hedge_maturity_days: 30
      cost: 0.005
    evaluation:
      n_paths: 5000
      n_episodes: 1
      seed: 1234
      strategies: [delta, delta_gamma, delta_vega]
    output_dir: runs/hedge

Load it with :func:`load_hedging_config` (``gradfolio.experiments.config_io.load_config(HedgingConfig, path)``).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gradfolio.experiments.config_io import load_config
from gradfolio.hedging.config import BASELINES, BaselineName, EnvConfig, MarketConfig


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


class HedgingConfig(BaseModel):
    """Everything a hedging run needs: the environment, the evaluation and the output folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: EnvConfig = EnvConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    output_dir: str = "runs/hedge"


def load_hedging_config(path: str | os.PathLike[str] | None) -> HedgingConfig:
    """The :class:`HedgingConfig` in ``path`` (YAML/TOML), or the paper's defaults when ``None``."""
    return HedgingConfig() if path is None else load_config(HedgingConfig, path)


__all__ = ["HedgingConfig", "EvaluationConfig", "EnvConfig", "MarketConfig", "load_hedging_config"]
