"""SB3Strategy: a trained agent walked forward by walk_forward equals its own episode in the environment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("stable_baselines3")

from gradfolio.allocation.rl import PortfolioEnv  # noqa: E402
from gradfolio.allocation.rl.training import train_agent  # noqa: E402
from gradfolio.backtest import needs_holdings, walk_forward  # noqa: E402

COST = [0.002, 0.0005, 0.001, 0.003]


def test_agent_in_walk_forward_equals_its_episode(planted: pd.DataFrame) -> None:
    train = PortfolioEnv(planted.iloc[:200], 10, gap=1, rebalance_every=2, n_envs=16, episode_length=10, cost=COST,
                         obs_scale=20.0, seed=4)
    agent = train_agent(train, "ppo", 1024, seed=4, action_scale=3.0,
                        algo_params={"n_steps": 16, "batch_size": 64, "learning_rate": 1e-3})
    assert needs_holdings(agent) and agent.model.num_timesteps == 1024
    res = walk_forward({"ppo": agent}, planted, 10, gap=1, rebalance_every=2, cost=COST, dtype=torch.float64,
                       start=planted.index[200])
    env = PortfolioEnv(planted, 10, gap=1, rebalance_every=2, start=200, cost=COST, obs_scale=20.0)
    env.reset()
    nets, weights = [], []
    for _ in range(env.H):
        action, _ = agent.model.predict(env.flat_observation().to(torch.float32).numpy(), deterministic=True)
        _, _, _, info = env.step(3.0 * torch.as_tensor(np.clip(action, -1, 1), dtype=torch.float64))
        nets.append(info["net"][0])
        weights.append(info["weights"][0])
    assert env.H == len(res.turnover)
    np.testing.assert_allclose(torch.stack(weights).numpy(), res.weights["ppo"].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(torch.cat(nets).numpy(), res.returns["ppo"].to_numpy(), rtol=0, atol=1e-12)
    assert float(res.turnover["ppo"].iloc[0]) == pytest.approx(1.0)  # buys in from cash


def test_agent_weights_violating_the_constraints_name_the_decision(planted: pd.DataFrame) -> None:
    """An agent whose map gives weights outside the constraints (here: the tanh map under a long-only
    budget) is stopped in walk_forward with the decision named."""
    from gradfolio.allocation.rl import ActionMap
    from gradfolio.allocation.rl.agent import SB3Strategy
    from gradfolio.errors import DataError

    env = PortfolioEnv(planted.iloc[:100], 5, n_envs=4, episode_length=5, seed=0)
    agent = train_agent(env, "a2c", 40, seed=0, algo_params={"n_steps": 2})
    loose = SB3Strategy(agent.model, ActionMap(4, "tanh", constraints={"long_only": True}), action_scale=5.0)
    with pytest.raises(DataError, match=r"SB3Strategy \(step 0, environment 0\): the weights violate"):
        walk_forward({"loose": loose}, planted, 5, dtype=torch.float64)
