"""A trained agent as a saved strategy bundle: its policy as JSON and tensors, never SB3's pickles.

:func:`save_agent` writes an :class:`~gradfolio.allocation.rl.agent.SB3Strategy` as a bundle
(:func:`gradfolio.allocation.strategy.save_strategy`, ``kind="agent"``, ``name`` = the algorithm)
whose ``params`` say everything needed to rebuild it::

    allocator, allocator_params        the action map (ActionMap(N, allocator, allocator_params))
    obs_scale, action_scale            observation = obs_scale * window, then the held weights;
                                       scores = action_scale * clip(action, -1, 1)
    deterministic                      the policy's mean action (true) or a sample
    policy                             class (ActorCriticPolicy | SACPolicy | TD3Policy),
                                       observation_size (L N + N), n_assets, kwargs (the SB3
                                       constructor parameters as JSON: net_arch, activation_fn as
                                       "torch.nn:Tanh", ...)
    versions                           stable_baselines3 and gymnasium that wrote it

``weights.pt`` holds the policy's state dict (``policy.<name>``), written by
:func:`gradfolio.checkpoint.save_state` and read with ``torch.load(weights_only=True)``.
:func:`build_saved_agent` rebuilds the SB3 policy class from an allowlist with the same spaces
(:func:`~gradfolio.allocation.rl.adapters.make_spaces`) and keyword arguments (classes resolved only
from ``torch.nn``, ``torch.optim`` and SB3's ``torch_layers``, and only subclasses of what each
argument takes), as :class:`AgentPolicy`, a module ``(X, before, previous) -> w`` that computes
exactly what the :class:`SB3Strategy` did in the backtest (``SB3Strategy`` over the policy: SB3's
``predict`` of an algorithm is its policy's ``predict``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)
from torch import Tensor, nn

from gradfolio.allocation.rl.actions import ActionMap
from gradfolio.allocation.rl.agent import SB3Strategy
from gradfolio.allocation.strategy.bundle import DataFingerprint
from gradfolio.errors import ConfigError
from gradfolio.solvers.constraints import constraints_data

POLICIES: dict[str, tuple[str, str]] = {
    "ActorCriticPolicy": ("stable_baselines3.common.policies", "ActorCriticPolicy"),
    "SACPolicy": ("stable_baselines3.sac.policies", "SACPolicy"),
    "TD3Policy": ("stable_baselines3.td3.policies", "TD3Policy"),
}
"""Policy classes a bundle may name (the ``MlpPolicy`` of PPO/A2C, SAC, TD3/DDPG)."""

_CLASS_ARGS: dict[str, tuple[str, str]] = {
    "activation_fn": ("torch.nn", "activation (torch.nn.modules.activation)"),
    "optimizer_class": ("torch.optim", "torch.optim.Optimizer"),
    "features_extractor_class": ("stable_baselines3.common.torch_layers", "BaseFeaturesExtractor"),
}
"""Constructor arguments that hold a class: the one module it may come from, and what it must subclass."""

_NOT_SAVED = ("observation_space", "action_space", "lr_schedule")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PolicySpec(_Strict):
    """The policy's architecture: its class, the sizes of its spaces and its constructor arguments (JSON)."""

    cls: Literal["ActorCriticPolicy", "SACPolicy", "TD3Policy"] = Field(alias="class")
    observation_size: StrictInt = Field(ge=2)
    n_assets: StrictInt = Field(ge=1)
    kwargs: dict[StrictStr, Any]


class AgentParams(_Strict):
    """The ``params`` of an agent's ``strategy.json`` (validated field by field on load)."""

    allocator: StrictStr
    allocator_params: dict[StrictStr, Any]
    obs_scale: float = Field(gt=0)
    action_scale: float = Field(gt=0)
    deterministic: StrictBool = True
    policy: PolicySpec
    versions: dict[StrictStr, StrictStr]


class AgentPolicy(nn.Module):
    """A saved agent: ``(X (B, C, L, N), before (B, N), previous (B, N)) -> w (B, N)`` (float64).

    The SB3 policy (``self.policy``, float32 inside, as trained) behind the same
    :class:`SB3Strategy` code path as the backtest: the observation ``obs_scale * window`` then
    ``before``, the (deterministic) action clipped to ``[-1, 1]`` and scaled by ``action_scale``,
    then the :class:`ActionMap`. ``needs_holdings = True``: it decides from what it holds.
    """

    needs_holdings = True

    def __init__(self, policy: nn.Module, action_map: ActionMap, obs_scale: float, action_scale: float,
                 deterministic: bool = True) -> None:
        super().__init__()
        self.policy = policy
        self.strategy = SB3Strategy(policy, action_map, obs_scale, action_scale, deterministic)

    def forward(self, X: Tensor, before: Tensor, previous: Tensor) -> Tensor:
        """Target weights ``(B, N)`` in the dtype of ``X``."""
        return self.strategy(X, before, previous)


def _class_name(key: str, value: Any) -> str:
    module, base = _CLASS_ARGS[key]
    if not isinstance(value, type) or getattr(importlib.import_module(module), value.__name__, None) is not value:
        raise ConfigError(
            f"agent policy argument {key}={value!r} cannot be saved in a strategy bundle: only classes of {module} "
            f"({base}) are; use one of those."
        )
    text = f"{module}:{value.__name__}"
    _resolve_class(key, text, "save_agent")  # what is saved must load
    return text


def _resolve_class(key: str, text: Any, where: str) -> type:
    module, base = _CLASS_ARGS[key]
    if not isinstance(text, str) or ":" not in text or text.split(":", 1)[0] != module:
        raise ConfigError(f"{where}: policy.kwargs.{key}={text!r} must name a class of {module} as '{module}:Name'.")
    name = text.split(":", 1)[1]
    found = getattr(importlib.import_module(module), name, None)
    if key == "activation_fn":
        ok = isinstance(found, type) and issubclass(found, nn.Module) and found.__module__ == "torch.nn.modules.activation"
    elif key == "optimizer_class":
        ok = isinstance(found, type) and issubclass(found, torch.optim.Optimizer)
    else:
        from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

        ok = isinstance(found, type) and issubclass(found, BaseFeaturesExtractor)
    if not ok:
        raise ConfigError(f"{where}: policy.kwargs.{key}={text!r} is not an allowed class ({base}); the file was edited.")
    return found  # type: ignore[return-value]


def policy_spec(policy: nn.Module, n_assets: int, observation_size: int) -> dict[str, Any]:
    """The JSON architecture of an SB3 policy (its class and constructor arguments; see the module doc).

    Raises
    ------
    ConfigError
        A policy class outside :data:`POLICIES`, spaces other than the portfolio adapter's, or a
        constructor argument that is not JSON data or an allowed class.
    """
    from gradfolio.allocation.strategy.bundle import json_params

    name = type(policy).__name__
    if name not in POLICIES or type(policy).__module__ != POLICIES[name][0]:
        raise ConfigError(
            f"agent policy {type(policy).__module__}.{name} cannot be saved in a strategy bundle; use the 'MlpPolicy' "
            f"of an algorithm of gradfolio.allocation.rl.training.AGENTS ({sorted(POLICIES)})."
        )
    data = dict(policy._get_constructor_parameters())  # type: ignore[operator]
    obs, act = _spaces(observation_size, n_assets)
    if data["observation_space"] != obs or data["action_space"] != act:
        raise ConfigError(
            f"agent policy: spaces {data['observation_space']} / {data['action_space']} are not the portfolio "
            f"environment's {obs} / {act}; train it on a PortfolioVecEnv."
        )
    kwargs = {k: v for k, v in data.items() if k not in _NOT_SAVED}
    for key in _CLASS_ARGS:
        if key in kwargs:
            kwargs[key] = _class_name(key, kwargs[key])
    return {"class": name, "observation_size": observation_size, "n_assets": n_assets,
            "kwargs": json_params(kwargs, f"agent policy {name}")}


def _spaces(observation_size: int, n_assets: int) -> tuple[Any, Any]:
    import numpy as np
    from gymnasium import spaces

    return (spaces.Box(-np.inf, np.inf, shape=(observation_size,), dtype=np.float32),
            spaces.Box(-1.0, 1.0, shape=(n_assets,), dtype=np.float32))


def build_policy(spec: PolicySpec, where: str = "policy") -> nn.Module:
    """A fresh SB3 policy of ``spec`` (parameters initialised without touching the global torch generator)."""
    module, cls_name = POLICIES[spec.cls]
    cls = getattr(importlib.import_module(module), cls_name)
    kwargs = dict(spec.kwargs)
    for key in _CLASS_ARGS:
        if key in kwargs:
            kwargs[key] = _resolve_class(key, kwargs[key], where)
    obs, act = _spaces(spec.observation_size, spec.n_assets)
    with torch.random.fork_rng(devices=[]):
        try:
            return cls(observation_space=obs, action_space=act, lr_schedule=cls._dummy_schedule, **kwargs)
        except (TypeError, ValueError, AssertionError, KeyError) as exc:
            raise ConfigError(f"{where}: policy {spec.cls} does not take kwargs {sorted(kwargs)} ({exc}); the file was "
                              "edited or written by another Stable-Baselines3.") from None


def _versions() -> dict[str, str]:
    import gymnasium
    import stable_baselines3

    return {"stable_baselines3": stable_baselines3.__version__, "gymnasium": gymnasium.__version__}


def agent_params(agent: SB3Strategy, n_assets: int, lookback: int) -> dict[str, Any]:
    """The bundle ``params`` of ``agent`` (see the module doc), checked to rebuild the same action map.

    Raises
    ------
    ConfigError
        An allocator given as a module, parameters that are not JSON data, an action map whose
        constraints are not its allocator's defaults, or a policy that cannot be saved.
    """
    from gradfolio.allocation.strategy.bundle import json_params

    amap = agent.action_map
    if not isinstance(amap.name, str) or not isinstance(getattr(amap, "allocator_params", None), dict):
        raise ConfigError("save_agent: the agent's allocator is a module; build it by name (allocator='softmax', ...).")
    params = json_params(amap.allocator_params, f"agent allocator {amap.name!r}")
    again = ActionMap(n_assets, amap.name, params)
    if again.constraints != amap.constraints:
        raise ConfigError(
            f"save_agent: the action map checks constraints {amap.constraints} other than its allocator's "
            f"({again.constraints}); give them to the allocator (allocator_params.constraints) instead."
        )
    policy = getattr(agent.model, "policy", agent.model)
    return {
        "allocator": amap.name, "allocator_params": params, "obs_scale": agent.obs_scale,
        "action_scale": agent.action_scale, "deterministic": bool(agent.deterministic),
        "policy": policy_spec(policy, n_assets, lookback * n_assets + n_assets), "versions": _versions(),
    }


def save_agent(
    folder: str | os.PathLike[str],
    agent: SB3Strategy,
    *,
    algo: str,
    assets: Sequence[str],
    returns_kind: Literal["simple", "log"],
    lookback: int,
    gap: int = 0,
    label: str | None = None,
    data_fingerprint: DataFingerprint | pd.DataFrame | None = None,
    rebalance_every: int | None = None,
    cost_bps: float | None = None,
) -> Path:
    """Write a trained agent as a strategy bundle (``kind="agent"``; see the module doc).

    Parameters
    ----------
    folder
        The bundle folder (e.g. ``<run>/strategies/rl_ppo``), replaced atomically.
    agent
        The :class:`SB3Strategy` (``train_agent``'s result).
    algo
        Its name in :data:`~gradfolio.allocation.rl.training.AGENTS` (``"ppo"``...).
    assets, returns_kind, lookback, gap
        What it observes: windows ``(1, lookback, N)`` of ``returns_kind`` returns of ``assets``.
    label, data_fingerprint, rebalance_every, cost_bps
        Metadata as in :func:`~gradfolio.allocation.strategy.save_strategy`.

    Returns
    -------
    Path of the bundle.
    """
    from gradfolio.allocation.rl.training import AGENTS
    from gradfolio.allocation.strategy.bundle import save_strategy

    AGENTS.entry(algo, where="algo")
    params = agent_params(agent, len(assets), lookback)
    policy = getattr(agent.model, "policy", agent.model)
    module = AgentPolicy(policy, agent.action_map, agent.obs_scale, agent.action_scale, agent.deterministic)
    constraints = agent.action_map.constraints
    return save_strategy(
        folder, module, kind="agent", name=algo, params=params, assets=assets, returns_kind=returns_kind,
        lookback=lookback, gap=gap, dtype=torch.float64, data_fingerprint=data_fingerprint,
        constraints=None if constraints is None else constraints_data(constraints), label=label,
        rebalance_every=rebalance_every, cost_bps=cost_bps,
    )




def build_saved_agent(name: str, params: Mapping[str, Any], n_assets: int, lookback: int, where: str) -> AgentPolicy:
    """The :class:`AgentPolicy` described by a bundle (fresh policy parameters: its weights are loaded next).

    Raises
    ------
    ConfigError
        Unknown algorithm, params that do not validate (the field is named), sizes that do not fit
        ``lookback`` and ``n_assets``, classes outside the allowlist.
    """
    import warnings

    from gradfolio.allocation.rl.training import AGENTS

    try:
        AGENTS.entry(name, where="name")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc} The file was edited or written by another version.") from None
    try:
        spec = AgentParams.model_validate(dict(params))
    except ValidationError as exc:
        fields = "; ".join(f"field 'params.{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{where}: {fields}; the file was edited or damaged: save the strategy again.") from None
    if spec.policy.n_assets != n_assets or spec.policy.observation_size != lookback * n_assets + n_assets:
        raise ConfigError(
            f"{where}: params.policy sizes (observation {spec.policy.observation_size}, {spec.policy.n_assets} assets) "
            f"do not fit lookback {lookback} and {n_assets} assets; the file was edited."
        )
    now = _versions()
    saved = spec.versions.get("stable_baselines3", "")
    if saved.split(".")[:1] != now["stable_baselines3"].split(".")[:1]:
        warnings.warn(f"{where}: written with Stable-Baselines3 {saved or 'unknown'}, loaded with "
                      f"{now['stable_baselines3']}; check its weights.", UserWarning, stacklevel=3)
    policy = build_policy(spec.policy, where)
    try:
        amap = ActionMap(n_assets, spec.allocator, spec.allocator_params)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: allocator {spec.allocator!r} with params {spec.allocator_params} ({exc}); the file "
                          "was edited or written by another version.") from None
    return AgentPolicy(policy, amap, spec.obs_scale, spec.action_scale, spec.deterministic)


__all__ = ["POLICIES", "AgentParams", "AgentPolicy", "PolicySpec", "agent_params", "build_policy",
           "build_saved_agent", "policy_spec", "save_agent"]
