"""Distributional reinforcement learning for hedging (GVDH with Adam, ANADDH with ANA), split by role.

- :mod:`~gradfolio.hedging.rl.losses`: quantile levels, the (quantile) Huber loss and the risk
  objective of the actor.
- :mod:`~gradfolio.hedging.rl.replay`: transitions (:class:`Batch`) and the :class:`ReplayBuffer`.
- :mod:`~gradfolio.hedging.rl.networks`: :class:`Actor`, :class:`QuantileCritic`,
  :class:`FeatureScaler` and the :func:`mlp` they are built on.
- :mod:`~gradfolio.hedging.rl.agent`: :class:`AgentConfig` and :class:`DistributionalAgent`
  (networks, targets, optimizers, the update), and :func:`greek_feature_fn`.
- :mod:`~gradfolio.hedging.rl.training`: :class:`Trainer` (takes a built agent and environments;
  rollouts on the vectorized environment, validation, checkpoints and exact resume) and the
  helpers that build them, :func:`make_env` and :func:`make_agent`.

``Trainer`` is exported here only, not from :mod:`gradfolio.hedging`, so that it never shadows
:class:`gradfolio.allocation.Trainer`; write ``from gradfolio.hedging.rl import Trainer`` (or
``gradfolio.hedging.rl.Trainer``). Its file-level settings (``TrainerConfig``) live in
:mod:`gradfolio.experiments.hedging.config`.
"""

from gradfolio.hedging.rl.agent import AgentConfig, DistributionalAgent, FeatureFn, greek_feature_fn
from gradfolio.hedging.rl.losses import Objective, huber, quantile_huber_loss, quantile_levels, quantile_objective
from gradfolio.hedging.rl.networks import Actor, FeatureScaler, QuantileCritic, mlp
from gradfolio.hedging.rl.replay import Batch, ReplayBuffer
from gradfolio.hedging.rl.training import (
    TRAIN_SEED_OFFSET,
    VAL_SEED,
    Trainer,
    make_agent,
    make_env,
    validation_score,
)

__all__ = [
    "Objective", "quantile_levels", "huber", "quantile_huber_loss", "quantile_objective",
    "Batch", "ReplayBuffer",
    "mlp", "FeatureScaler", "Actor", "QuantileCritic",
    "AgentConfig", "DistributionalAgent", "FeatureFn", "greek_feature_fn",
    "Trainer", "make_env", "make_agent", "validation_score", "TRAIN_SEED_OFFSET", "VAL_SEED",
]
