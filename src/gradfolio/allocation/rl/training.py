"""Train a Stable-Baselines3 agent on a :class:`~gradfolio.allocation.rl.env.PortfolioEnv`: seeded,
checkpointed, resumable, and stopped with a clear message when it diverges.

- :data:`AGENTS`: ``"ppo"``, ``"a2c"`` (on-policy), ``"sac"``, ``"td3"``, ``"ddpg"`` (off-policy), the
  algorithms of Stable-Baselines3 (not re-implemented here).
- :func:`train_agent`: builds the algorithm on a :class:`~gradfolio.allocation.rl.adapters.PortfolioVecEnv`
  with ``seed`` (SB3 seeds Python's, NumPy's and torch's global generators and the environment),
  trains for ``timesteps`` environment steps (all paths counted) and returns a
  :class:`~gradfolio.allocation.rl.agent.SB3Strategy`.
- Checkpoints: every ``checkpoint_every`` steps the policy's and its optimizers' state dicts and
  the step count are written with :class:`gradfolio.checkpoint.Checkpoint` (atomic, read back with
  ``torch.load(weights_only=True)``: SB3's own zip format, which unpickles, is never loaded), and
  only while every parameter is finite. ``resume=True`` continues from the file (off-policy
  agents restart with an empty replay buffer).
- Divergence: a non-finite policy parameter (after a NaN loss) or a NaN raised inside SB3 stops
  training with a :class:`~gradfolio.errors.SolverError` naming the step and the last good checkpoint,
  which is kept.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from gradfolio.allocation.rl.agent import SB3Strategy
from gradfolio.allocation.rl.env import PortfolioEnv
from gradfolio.checkpoint import Checkpoint
from gradfolio.errors import ConfigError, SolverError
from gradfolio.registry import Registry

AGENTS: Registry[Any] = Registry("agent")
"""Agent names -> factories of the Stable-Baselines3 algorithm classes (SB3 imported when one is built):
``"ppo"``, ``"a2c"`` (on-policy), ``"sac"``, ``"td3"``, ``"ddpg"`` (off-policy)."""


def _sb3(cls_name: str) -> Callable[[], Any]:
    def factory() -> Any:
        try:
            import stable_baselines3
        except ImportError:  # pragma: no cover - the rl extra is part of the test install
            raise ConfigError("agents need Stable-Baselines3 and Gymnasium: pip install 'gradfolio[rl]'.") from None
        return getattr(stable_baselines3, cls_name)

    factory.__name__ = factory.__qualname__ = f"stable_baselines3.{cls_name}"
    factory.__doc__ = f"The Stable-Baselines3 class ``{cls_name}``."
    return factory


for _name in ("PPO", "A2C", "SAC", "TD3", "DDPG"):
    AGENTS.register(_name.lower(), _sb3(_name))

CHECKPOINT = "agent.pt"
"""File name of an agent's checkpoint in its run folder."""


def algorithm_class(algo: str) -> Any:
    """The Stable-Baselines3 class of ``algo`` (a name of :data:`AGENTS`; ConfigError naming ``algo`` if unknown)."""
    return AGENTS.build(algo, where="algo")


def _optimizers(model: Any) -> dict[str, torch.optim.Optimizer]:
    found = {}
    for owner, name in ((model.policy, "optimizer"), (getattr(model, "actor", None), "optimizer"),
                        (getattr(model, "critic", None), "optimizer"), (model, "ent_coef_optimizer")):
        opt = getattr(owner, name, None) if owner is not None else None
        if isinstance(opt, torch.optim.Optimizer):
            key = f"{type(owner).__name__}.{name}"
            found[key] = opt
    return found


def _finite(model: Any) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.policy.parameters())


def _state(model: Any) -> dict[str, Any]:
    state = {
        "policy": {k: v.detach().cpu().clone() for k, v in model.policy.state_dict().items()},
        "optimizers": {k: opt.state_dict() for k, opt in _optimizers(model).items()},
        "num_timesteps": int(model.num_timesteps),
    }
    log_ent = getattr(model, "log_ent_coef", None)
    if isinstance(log_ent, torch.Tensor):
        state["log_ent_coef"] = log_ent.detach().cpu().clone()
    return state


def _restore(model: Any, state: Mapping[str, Any]) -> None:
    model.policy.load_state_dict(state["policy"])
    for key, opt in _optimizers(model).items():
        if key in state["optimizers"]:
            opt.load_state_dict(state["optimizers"][key])
    if "log_ent_coef" in state and isinstance(getattr(model, "log_ent_coef", None), torch.Tensor):
        with torch.no_grad():
            model.log_ent_coef.copy_(state["log_ent_coef"])
    model.num_timesteps = int(state["num_timesteps"])


def _continue_from(model: Any, init: SB3Strategy, algo: str) -> None:
    """Copy ``init``'s policy, optimizers and entropy coefficient into ``model`` (its step count stays 0)."""
    source = getattr(init, "model", None)
    if type(source) is not type(model):
        raise ConfigError(
            f"agent {algo}: init is a {type(source).__name__} agent; continue only from an agent of the same algorithm."
        )
    state = {**_state(source), "num_timesteps": 0}
    state["optimizers"] = copy.deepcopy(state["optimizers"])  # the new optimizers own their moments
    try:
        _restore(model, state)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"agent {algo}: cannot continue from init ({' '.join(str(exc).split())[:200]}); give the same algo_params "
            "(policy_kwargs) as the agent it continues."
        ) from None


class Diverged(Exception):
    """Raised inside SB3's loop by the guard callback (turned into a :class:`SolverError`)."""


def _callback(model_box: dict[str, Any], checkpoint: Checkpoint | None, every: int) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    class Guard(BaseCallback):
        """Checks the policy after every rollout; saves a checkpoint every ``every`` steps while finite."""

        def __init__(self) -> None:
            super().__init__()
            self.last_saved = -1

        def _on_step(self) -> bool:
            if checkpoint is not None and self.num_timesteps - max(self.last_saved, model_box["start"]) >= every:
                self._guard()
                checkpoint.save(_state(self.model))
                self.last_saved = self.num_timesteps
                model_box["saved"] = self.num_timesteps
            return True

        def _on_rollout_end(self) -> None:
            self._guard()

        def _guard(self) -> None:
            if not _finite(self.model):
                raise Diverged()

    return Guard()


def train_agent(
    env: PortfolioEnv,
    algo: str = "ppo",
    timesteps: int = 10_000,
    *,
    seed: int = 0,
    algo_params: Mapping[str, Any] | None = None,
    action_scale: float = 5.0,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 2048,
    resume: bool = False,
    device: str = "cpu",
    init: SB3Strategy | None = None,
) -> SB3Strategy:
    """Train ``algo`` on ``env`` and return it as a walk-forward strategy.

    Parameters
    ----------
    env
        The training environment (its ``n_envs`` paths are SB3's vectorized environments).
    algo
        A name of :data:`AGENTS`.
    timesteps
        Environment steps in all (``n_envs`` per vectorized step), ``>= 1``.
    seed
        Seeds SB3 (global generators, policy initialisation, action sampling) and the random starts.
    algo_params
        Keyword arguments of the SB3 class (``learning_rate``, ``n_steps``, ``batch_size``,
        ``policy_kwargs``, ``gamma``...), checked by SB3.
    action_scale
        Scores are ``action_scale * a`` for the agent's actions ``a`` in ``[-1, 1]^N``.
    checkpoint
        File of the checkpoint (e.g. ``run/agents/ppo/agent.pt``); ``None``: none written.
    checkpoint_every
        Environment steps between checkpoints.
    resume
        Continue from ``checkpoint`` if it exists (same settings, checked by its fingerprint).
    device
        Torch device of the policy (``"cpu"`` is the fastest for small MLPs).
    init
        Continue from this agent (same ``algo`` and ``algo_params``, e.g. a walk-forward refit on
        new data): its policy's and optimizers' state dicts (and SAC's entropy coefficient) are
        copied into the new algorithm before training, whose step count starts at 0 (off-policy
        agents start with an empty replay buffer). A checkpoint resumed with ``resume=True`` wins
        over ``init`` (it already continued from it).

    Returns
    -------
    SB3Strategy
        With ``.model`` the trained SB3 algorithm.

    Raises
    ------
    ConfigError
        An unknown algorithm, bad parameters, or a checkpoint written with other settings.
    SolverError
        Training diverged (non-finite policy parameters or a NaN inside SB3); the message names
        the step and the last good checkpoint, which is kept.
    """
    from gradfolio.allocation.rl.adapters import PortfolioVecEnv

    cls = algorithm_class(algo)
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ConfigError(f"agent {algo}: timesteps={timesteps!r} must be a whole number >= 1.")
    if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ConfigError(f"agent {algo}: checkpoint_every={checkpoint_every!r} must be a whole number >= 1.")
    params = dict(algo_params or {})
    vec = PortfolioVecEnv(env, action_scale=action_scale)
    try:
        model = cls("MlpPolicy", vec, seed=seed, device=device, verbose=0, **params)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"agent {algo}: bad algo_params {sorted(params)} ({exc}).") from exc
    store = None
    if checkpoint is not None:
        fingerprint = {
            "algo": algo, "seed": seed, "algo_params": {k: repr(v) for k, v in params.items()},
            "action_scale": action_scale, "n_envs": env.B, "assets": env.N, "lookback": env.L,
            "rebalance_every": env.k, "gap": env.gap, "reward": env.reward_kind, "allocator": env.action_map.name,
            "cost": env.cost.rate.tolist(),
        }
        store = Checkpoint(checkpoint, fingerprint, owner=f"agent {algo}")
    box: dict[str, Any] = {"start": 0, "saved": None}
    if resume and store is not None and store.exists():
        _restore(model, store.load())
        box["start"] = box["saved"] = model.num_timesteps
    elif init is not None:
        _continue_from(model, init, algo)
    remaining = timesteps - model.num_timesteps
    if remaining > 0:
        try:
            model.learn(remaining, callback=_callback(box, store, checkpoint_every), reset_num_timesteps=False)
        except (Diverged, ValueError, RuntimeError) as exc:
            text = str(exc).lower()
            if isinstance(exc, Diverged) or not _finite(model) or any(w in text for w in ("nan", "inf", "invalid values")):
                kept = (
                    f"the last good checkpoint (step {box['saved']}) is kept at {Path(store.path)}"
                    if store is not None and box["saved"] is not None
                    else "no checkpoint was written (give checkpoint= to keep one)"
                )
                raise SolverError(
                    f"agent {algo} diverged at step {model.num_timesteps}: non-finite policy parameters, loss or action distribution (NaN/inf); "
                    f"{kept}; lower the learning rate or scale the observations (obs_scale) and rewards."
                ) from None
            raise
        if store is not None:
            store.save(_state(model))
    return SB3Strategy(model, env.action_map, env.obs_scale, action_scale)


__all__ = ["AGENTS", "CHECKPOINT", "algorithm_class", "train_agent"]
