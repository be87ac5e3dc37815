"""Gymnasium and Stable-Baselines3 faces of :class:`~gradfolio.allocation.rl.env.PortfolioEnv`.

- :class:`PortfolioGymEnv` — one path as a ``gymnasium.Env`` (passes ``gymnasium.utils.env_checker.check_env``).
- :class:`PortfolioVectorEnv` — ``B`` paths as a ``gymnasium.vector.VectorEnv`` (one tensor step; same-step
  autoreset: the last observation of a finished path in ``info["final_obs"]``, masked by ``info["_final_obs"]``),
  for libraries that take Gymnasium's vector API.
- :class:`PortfolioVecEnv` — ``B`` paths as a Stable-Baselines3 ``VecEnv``: one tensor step for all
  of them (SB3's ``DummyVecEnv`` would loop over ``B`` Python environments), finished episodes
  restarted in place with ``terminal_observation`` and ``TimeLimit.truncated`` in their infos.

Observations are ``float32`` rows ``(L * N + N,)`` (:func:`~gradfolio.allocation.rl.env.flatten_observation`:
the window times ``obs_scale``, then the held weights); actions are ``float32`` in ``[-1, 1]^N``, the scores
``action_scale * a`` (:data:`DEFAULT_ACTION_SCALE`). This module imports gymnasium and stable_baselines3 (the ``rl``
extra); nothing imports it when ``gradfolio`` loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv as GymVectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from gradfolio.allocation.rl.env import PortfolioEnv
from gradfolio.errors import ConfigError

DEFAULT_ACTION_SCALE = 5.0
"""Agents act in ``[-1, 1]^N`` (what SB3 recommends); the scores are ``5 a``: softmax weights from
``e^-10`` to one relative to each other."""


def check_action_scale(action_scale: float) -> float:
    """``action_scale`` as a float, or a :class:`ConfigError` unless it is finite and > 0."""
    if not (isinstance(action_scale, (int, float)) and np.isfinite(action_scale) and action_scale > 0):
        raise ConfigError(f"action_scale={action_scale!r} must be a finite number > 0 (e.g. 5; 1 for allocator='weights').")
    return float(action_scale)


def make_spaces(env: PortfolioEnv) -> tuple[spaces.Box, spaces.Box]:
    """``(observation_space, action_space)`` of one path of ``env``: ``(L * N + N,)`` and ``[-1, 1]^N``."""
    obs = spaces.Box(-np.inf, np.inf, shape=(env.observation_size,), dtype=np.float32)
    act = spaces.Box(-1.0, 1.0, shape=(env.N,), dtype=np.float32)
    return obs, act


def _numpy_info(info: dict[str, torch.Tensor], b: int) -> dict[str, Any]:
    return {key: value[b].detach().cpu().numpy() for key, value in info.items()}


class PortfolioGymEnv(gymnasium.Env):
    """One portfolio path (``n_envs=1``) as a ``gymnasium.Env``.

    Parameters
    ----------
    env
        A :class:`PortfolioEnv` with ``n_envs=1``.
    action_scale
        Scores are ``action_scale * a`` for actions ``a`` in ``[-1, 1]^N``.
    """

    metadata = {"render_modes": []}

    def __init__(self, env: PortfolioEnv, action_scale: float = DEFAULT_ACTION_SCALE) -> None:
        if env.B != 1:
            raise ConfigError(f"PortfolioGymEnv: the PortfolioEnv has n_envs={env.B}; use PortfolioVecEnv for several paths.")
        self.core = env
        self.action_scale = check_action_scale(action_scale)
        self.observation_space, self.action_space = make_spaces(env)
        self.render_mode = None

    def _obs(self) -> np.ndarray:
        return self.core.flat_observation()[0].to(torch.float32).cpu().numpy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode (``seed`` reseeds the random start); ``(observation, {})``."""
        super().reset(seed=seed)
        self.core.reset(seed=seed)
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One rebalance; ``(observation, reward, terminated=False, truncated, info)`` (episodes end by time)."""
        a = torch.as_tensor(np.asarray(action, dtype=np.float64), device=self.core.device)
        _, reward, done, info = self.core.step(self.action_scale * a.reshape(1, -1))
        return self._obs(), float(reward[0]), False, bool(done[0]), _numpy_info(info, 0)


class PortfolioVectorEnv(GymVectorEnv):
    """``B`` portfolio paths as a ``gymnasium.vector.VectorEnv`` (see the module docstring).

    Parameters
    ----------
    env
        A :class:`PortfolioEnv` (its ``n_envs`` is ``num_envs``).
    action_scale
        Scores are ``action_scale * a`` for actions ``a`` in ``[-1, 1]^N``.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, env: PortfolioEnv, action_scale: float = DEFAULT_ACTION_SCALE) -> None:
        self.core = env
        self.num_envs = env.B
        self.action_scale = check_action_scale(action_scale)
        self.single_observation_space, self.single_action_space = make_spaces(env)
        self.observation_space = batch_space(self.single_observation_space, env.B)
        self.action_space = batch_space(self.single_action_space, env.B)

    def _obs(self) -> np.ndarray:
        return self.core.flat_observation().to(torch.float32).cpu().numpy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Restart every path (``seed`` reseeds the random starts); ``(observations (B, D), {})``."""
        self.core.reset(seed=seed)
        return self._obs(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step all paths; ``(obs, rewards, terminations (all False), truncations, infos)``, finished paths restarted."""
        a = torch.as_tensor(np.asarray(actions, dtype=np.float64), device=self.core.device)
        _, reward, done, _ = self.core.step(self.action_scale * a.reshape(self.num_envs, -1))
        obs, dones = self._obs(), done.cpu().numpy()
        infos: dict[str, Any] = {}
        if dones.any():
            infos = {"final_obs": np.where(dones[:, None], obs, 0.0).astype(np.float32), "_final_obs": dones.copy()}
            self.core.reset(mask=done)
            obs = self._obs()
        return obs, reward.to(torch.float32).cpu().numpy(), np.zeros_like(dones), dones, infos


class PortfolioVecEnv(VecEnv):
    """``B`` portfolio paths as one Stable-Baselines3 ``VecEnv`` (see the module docstring).

    Parameters
    ----------
    env
        A :class:`PortfolioEnv` (its ``n_envs`` is ``num_envs``).
    action_scale
        Scores are ``action_scale * a`` for actions ``a`` in ``[-1, 1]^N``.
    """

    def __init__(self, env: PortfolioEnv, action_scale: float = DEFAULT_ACTION_SCALE) -> None:
        self.core = env
        self.render_mode = None
        self.action_scale = check_action_scale(action_scale)
        obs, act = make_spaces(env)
        super().__init__(env.B, obs, act)
        self._actions: np.ndarray | None = None

    def _obs(self) -> np.ndarray:
        return self.core.flat_observation().to(torch.float32).cpu().numpy()

    def reset(self) -> VecEnvObs:
        """Restart every path (with the seed of :meth:`seed`, if one was set); the observations ``(B, D)``."""
        seed = self._seeds[0]
        self.core.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        return self._obs()

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions ``(B, N)`` of the next :meth:`step_wait`."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step all paths at once; finished ones restart (their last observation in ``terminal_observation``)."""
        action = torch.as_tensor(np.asarray(self._actions, dtype=np.float64), device=self.core.device)
        _, reward, done, _ = self.core.step(self.action_scale * action.reshape(self.num_envs, -1))
        obs = self._obs()
        dones = done.cpu().numpy()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            for b in np.flatnonzero(dones):
                infos[b] = {"terminal_observation": obs[b].copy(), "TimeLimit.truncated": True}
            self.core.reset(mask=done)
            obs = self._obs()
        return obs, reward.to(torch.float32).cpu().numpy(), dones, infos

    def close(self) -> None:
        """Nothing to release."""

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        return [indices] if isinstance(indices, int) else list(indices)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The core's attribute (the same for every path)."""
        value = getattr(self, attr_name) if attr_name == "render_mode" else getattr(self.core, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set the core's attribute (shared by every path)."""
        setattr(self.core, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        """Call the core's method once; its result for every index."""
        out = getattr(self.core, method_name)(*method_args, **method_kwargs)
        return [out for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No path is wrapped."""
        return [False for _ in self._indices(indices)]


__all__ = ["PortfolioGymEnv", "PortfolioVectorEnv", "PortfolioVecEnv", "make_spaces", "check_action_scale", "DEFAULT_ACTION_SCALE"]
