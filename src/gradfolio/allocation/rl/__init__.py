"""Reinforcement-learning allocation: a batched Gymnasium portfolio environment and Stable-Baselines3 agents.

- :class:`~gradfolio.allocation.rl.env.PortfolioEnv` — ``B`` paths on torch, the backtest's drift and
  proportional costs, observation = window + held weights, action = scores through any allocator.
- :mod:`~gradfolio.allocation.rl.adapters` — ``PortfolioGymEnv`` (a ``gymnasium.Env``) and
  ``PortfolioVecEnv`` (a Stable-Baselines3 ``VecEnv`` stepping all paths in one tensor operation).
- :mod:`~gradfolio.allocation.rl.training` — ``AGENTS`` (PPO, A2C, SAC, TD3, DDPG by name),
  ``train_agent`` (seeded, checkpointed, resumable, stops on NaN).
- :class:`~gradfolio.allocation.rl.agent.SB3Strategy` — a trained agent as a
  :class:`~gradfolio.backtest.HoldingStrategy`-shaped strategy for ``walk_forward``.
- :mod:`~gradfolio.allocation.rl.policy` — ``save_agent`` / ``AgentPolicy``: a trained agent as a saved
  strategy bundle (its policy's architecture as JSON, its tensors; never SB3's pickles).

- :class:`~gradfolio.allocation.rl.eiie.EIIE` — Jiang, Xu and Liang's policy network (identical
  independent evaluators, cash bias, portfolio-vector memory input) and its commission factor;
  :class:`~gradfolio.allocation.rl.osbl.OSBLTrainer` — online stochastic batch learning with the PVM.

Gymnasium and Stable-Baselines3 (the ``rl`` extra) are imported only by the adapters, the
training, the agent and the saved policy, never by ``import gradfolio``.
"""

from gradfolio.allocation.rl.actions import ActionMap
from gradfolio.allocation.rl.eiie import EIIE, commission_factor, price_windows
from gradfolio.allocation.rl.env import PortfolioEnv, flatten_observation
from gradfolio.allocation.rl.osbl import OSBLHistory, OSBLTrainer
from gradfolio.allocation.rl.rewards import differential_sharpe

__all__ = ["ActionMap", "PortfolioEnv", "flatten_observation", "differential_sharpe", "EIIE", "commission_factor",
           "price_windows", "OSBLTrainer", "OSBLHistory"]
