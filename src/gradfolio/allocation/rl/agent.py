"""A trained Stable-Baselines3 agent as a walk-forward strategy that sees what it holds.

:class:`SB3Strategy` is a :class:`~gradfolio.backtest.HoldingStrategy` (``needs_holdings = True``):
``walk_forward`` calls it date by date with the window and the drifted weights held before the
trade, the very observation the agent was trained on in :class:`~gradfolio.allocation.rl.env.PortfolioEnv`
(:func:`~gradfolio.allocation.rl.env.flatten_observation`); the agent's deterministic action goes
through the same :class:`~gradfolio.allocation.rl.actions.ActionMap` as in training. Backtest with
the ``kind`` the environment observed (``walk_forward(kind=...)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradfolio.allocation.rl.actions import ActionMap
from gradfolio.allocation.rl.env import flatten_observation


class SB3Strategy:
    """``strategy(X (B, C, L, N), before (B, N), previous (B, N)) -> w (B, N)`` from an SB3 model.

    Parameters
    ----------
    model
        A Stable-Baselines3 algorithm (``PPO``, ``A2C``, ``SAC``, ...) trained on a ``PortfolioEnv``,
        or its policy (SB3's ``algorithm.predict`` is its policy's ``predict``; a saved agent,
        :class:`~gradfolio.allocation.rl.policy.AgentPolicy`, holds the policy only).
    action_map
        The environment's :class:`ActionMap` (allocator and constraints).
    obs_scale, action_scale
        The environment's window scale and the adapter's score scale.
    deterministic
        Use the policy's mean action (default) rather than a sample.
    """

    needs_holdings = True

    calls: int
    """Rebalance dates decided so far (named in errors as the step)."""

    def __init__(
        self, model: Any, action_map: ActionMap, obs_scale: float = 1.0, action_scale: float = 5.0, deterministic: bool = True
    ) -> None:
        self.model, self.action_map = model, action_map
        self.obs_scale, self.action_scale, self.deterministic = float(obs_scale), float(action_scale), deterministic
        self.calls = 0

    def observation(self, X: Tensor, before: Tensor) -> np.ndarray:
        """The agent's observation ``(B, L * N + N)`` (float32), as the environment builds it."""
        flat = flatten_observation(X.to(torch.float64), before.to(torch.float64), self.obs_scale)
        return flat.to(torch.float32).cpu().numpy()

    def scores(self, X: Tensor, before: Tensor) -> Tensor:
        """The agent's scores ``(B, N)`` (float64) for windows ``X`` holding ``before``."""
        action, _ = self.model.predict(self.observation(X, before), deterministic=self.deterministic)
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(X.shape[0], -1), -1.0, 1.0)
        return self.action_scale * torch.as_tensor(a, device=X.device)

    def __call__(self, X: Tensor, before: Tensor, previous: Tensor) -> Tensor:
        """Target weights ``(B, N)`` in the dtype of ``X``."""
        held = before.to(device=X.device, dtype=torch.float64)
        w = self.action_map(self.scores(X, before), X.to(torch.float64), held, step=self.calls, where="SB3Strategy")
        self.calls += 1
        return w.to(X.dtype)


__all__ = ["SB3Strategy"]
