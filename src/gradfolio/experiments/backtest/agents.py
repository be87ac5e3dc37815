"""The ``agents`` section of a backtest: reinforcement-learning agents trained before the test period.

Each enabled :class:`~gradfolio.experiments.backtest.config.AgentSettings` becomes a
:class:`~gradfolio.allocation.rl.env.PortfolioEnv` over the returns up to the first test decision
date (the data the networks train and validate on), with the run's lookback, gap, rebalancing
interval, return kind and proportional cost (``backtest.cost_bps``), random episode starts and the
agent's allocator (the run's ``constraints`` go into a ``convex`` allocator that names none); it is
trained by :func:`~gradfolio.allocation.rl.training.train_agent` with checkpoints in
``checkpoints/agents/<label>/agent.pt`` (resumed by a rerun of the same config) and walked forward
as a :class:`~gradfolio.allocation.rl.agent.SB3Strategy` (a strategy that sees what it holds).

With ``backtest.retrain_every``, :func:`agent_hooks` gives each agent a refit hook: at every
retraining date the agent is trained again on an environment over the rows the walk-forward hands
it (up to the date; the last ``retrain_size`` with a rolling window), continued from its current
policy and optimizers (``train_agent(init=...)``) for ``retrain_timesteps`` steps (default
``timesteps``), with its own checkpoint ``checkpoints/agents/<label>/refit-<date>/agent.pt``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from gradfolio.experiments.backtest.config import AgentSettings, BacktestConfig
from gradfolio.experiments.backtest.constraints import spec_data
from gradfolio.experiments.distributed import safe_slug


def agent_label(spec: AgentSettings) -> str:
    """The strategy label of an agent: ``label`` or ``rl_<algo>``."""
    return spec.label or f"rl_{spec.algo}"


def agent_seed(config: BacktestConfig, spec: AgentSettings) -> int:
    """The seed of an agent: its own ``seed``, else the run's."""
    return config.seed if spec.seed is None else spec.seed


def agent_env(config: BacktestConfig, spec: AgentSettings, returns: pd.DataFrame, seed: int,
              start_rows: Any = None) -> Any:
    """The training :class:`~gradfolio.allocation.rl.env.PortfolioEnv` of ``spec`` over ``returns`` (random starts,
    among ``start_rows`` when given), with the run's lookback, gap, rebalancing, kind and cost."""
    from gradfolio.allocation.rl import PortfolioEnv
    from gradfolio.costs import ProportionalCost

    d, b = config.data, config.backtest
    params = dict(spec.allocator_params)
    if spec.allocator == "convex" and config.constraints is not None and "constraints" not in params:
        params["constraints"] = spec_data(config.constraints.spec([str(c) for c in returns.columns]))
    return PortfolioEnv(
        returns, d.lookback, gap=d.gap, rebalance_every=b.rebalance_every, n_envs=spec.n_envs,
        episode_length=spec.episode_length, start="random", start_rows=start_rows,
        cost=ProportionalCost.from_bps(b.cost_bps), allocator=spec.allocator, allocator_params=params,
        reward=spec.reward, eta=spec.eta, kind=d.kind, obs_scale=spec.obs_scale, seed=seed,
    )


def train_one(config: BacktestConfig, spec: AgentSettings, env: Any, seed: int, timesteps: int, checkpoint: Path,
              resume: bool, init: Any = None) -> Any:
    """Train ``spec``'s algorithm on ``env`` (``train_agent`` with the section's settings)."""
    from gradfolio.allocation.rl.training import train_agent

    return train_agent(
        env, spec.algo, timesteps, seed=seed, algo_params=spec.algo_params, action_scale=spec.action_scale,
        checkpoint=checkpoint, checkpoint_every=spec.checkpoint_every, resume=resume, init=init,
    )


def train_agents(
    config: BacktestConfig, returns: pd.DataFrame, test_start: pd.Timestamp, checkpoints: Path, resume: bool
) -> dict[str, object]:
    """``{label: SB3Strategy}`` of the enabled agents of ``config``, trained on ``returns`` up to ``test_start``.

    Parameters
    ----------
    returns
        Simple returns ``(T, N)`` of the run.
    test_start
        First decision date of the test period: training rows end there.
    checkpoints
        Folder of the run's checkpoints (``agents/<label>/agent.pt`` below it).
    resume
        Continue from the checkpoints (the run's config is unchanged).
    """
    from gradfolio.allocation.rl.training import CHECKPOINT

    history = returns.loc[returns.index <= test_start]
    out: dict[str, object] = {}
    for spec in config.agents:
        if not spec.enabled:
            continue
        label, seed = agent_label(spec), agent_seed(config, spec)
        env = agent_env(config, spec, history, seed)
        out[label] = train_one(config, spec, env, seed, spec.timesteps,
                               checkpoints / "agents" / safe_slug(label) / CHECKPOINT, resume)
    return out


def agent_hooks(config: BacktestConfig, agents: dict[str, Any], checkpoints: Path, resume: bool
                ) -> dict[str, Callable[[pd.DataFrame], None]]:
    """``{label: refit(returns_up_to_t)}``: the walk-forward refit hook of every trained agent (see the module doc).

    The hook trains the agent again on an environment over exactly the rows it is given (the past
    of the refit date), continued from its current policy, and swaps the new policy into the same
    :class:`~gradfolio.allocation.rl.agent.SB3Strategy` that ``walk_forward`` holds.
    """
    from gradfolio.allocation.rl.training import CHECKPOINT

    specs = {agent_label(s): s for s in config.agents if s.enabled}
    hooks: dict[str, Callable[[pd.DataFrame], None]] = {}
    for label, agent in agents.items():
        spec, seed = specs[label], agent_seed(config, specs[label])

        def refit(rows: pd.DataFrame, agent: Any = agent, spec: AgentSettings = spec, seed: int = seed,
                  label: str = label) -> None:
            date = rows.index[-1].date()
            env = agent_env(config, spec, rows, seed)
            folder = checkpoints / "agents" / safe_slug(label) / f"refit-{date}"
            new = train_one(config, spec, env, seed, spec.retrain_timesteps or spec.timesteps,
                            folder / CHECKPOINT, resume, init=agent)
            agent.model = new.model

        hooks[label] = refit
    return hooks


def check_agent_refits(config: BacktestConfig, returns: pd.DataFrame) -> None:
    """Build every agent's environment on a rolling retraining window (``backtest.retrain_size`` rows) so that a
    window too short for an episode fails before any training (a :class:`~gradfolio.errors.ConfigError` or
    :class:`~gradfolio.errors.DataError` naming ``backtest.retrain_size``)."""
    from gradfolio.errors import ConfigError, DataError

    b = config.backtest
    if b.retrain_every is None or b.retrain_window != "rolling" or b.retrain_size is None:
        return
    for spec in config.agents:
        if spec.enabled:
            try:
                agent_env(config, spec, returns.iloc[-b.retrain_size:], 0)
            except (ConfigError, DataError) as exc:
                raise type(exc)(
                    f"backtest.retrain_size={b.retrain_size}: agent '{agent_label(spec)}' cannot train on a rolling "
                    f"window of that many rows ({exc}); use a longer retrain_size, a shorter episode_length or "
                    "retrain_window 'expanding'."
                ) from None


__all__ = ["agent_env", "agent_hooks", "agent_label", "agent_seed", "check_agent_refits", "train_agents", "train_one"]
