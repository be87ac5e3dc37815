"""The ``agents`` section of a backtest: reinforcement-learning agents trained before the test period.

Each enabled :class:`~gradfolio.experiments.backtest.config.AgentSettings` becomes a
:class:`~gradfolio.allocation.rl.env.PortfolioEnv` over the returns up to the first test decision
date (the data the networks train and validate on), with the run's lookback, gap, rebalancing
interval, return kind and proportional cost (``backtest.cost_bps``), random episode starts and the
agent's allocator (the run's ``constraints`` go into a ``convex`` allocator that names none); it is
trained by :func:`~gradfolio.allocation.rl.training.train_agent` with checkpoints in
``checkpoints/agents/<label>/agent.pt`` (resumed by a rerun of the same config) and walked forward
as a :class:`~gradfolio.allocation.rl.agent.SB3Strategy` (a strategy that sees what it holds).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gradfolio.experiments.backtest.config import AgentSettings, BacktestConfig
from gradfolio.experiments.backtest.constraints import spec_data
from gradfolio.experiments.distributed import safe_slug


def agent_label(spec: AgentSettings) -> str:
    """The strategy label of an agent: ``label`` or ``rl_<algo>``."""
    return spec.label or f"rl_{spec.algo}"


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
    from gradfolio.allocation.rl import PortfolioEnv
    from gradfolio.allocation.rl.training import CHECKPOINT, train_agent
    from gradfolio.costs import ProportionalCost

    d, b = config.data, config.backtest
    history = returns.loc[returns.index <= test_start]
    out: dict[str, object] = {}
    for spec in config.agents:
        if not spec.enabled:
            continue
        label = agent_label(spec)
        seed = config.seed if spec.seed is None else spec.seed
        params = dict(spec.allocator_params)
        if spec.allocator == "convex" and config.constraints is not None and "constraints" not in params:
            params["constraints"] = spec_data(config.constraints.spec([str(c) for c in returns.columns]))
        env = PortfolioEnv(
            history, d.lookback, gap=d.gap, rebalance_every=b.rebalance_every, n_envs=spec.n_envs,
            episode_length=spec.episode_length, start="random", cost=ProportionalCost.from_bps(b.cost_bps),
            allocator=spec.allocator, allocator_params=params, reward=spec.reward, eta=spec.eta, kind=d.kind,
            obs_scale=spec.obs_scale, seed=seed,
        )
        out[label] = train_agent(
            env, spec.algo, spec.timesteps, seed=seed, algo_params=spec.algo_params, action_scale=spec.action_scale,
            checkpoint=checkpoints / "agents" / safe_slug(label) / CHECKPOINT, checkpoint_every=spec.checkpoint_every,
            resume=resume,
        )
    return out


__all__ = ["agent_label", "train_agents"]
