"""train_agent: learns a planted market net of costs, seeded, checkpoint/resume, stops on divergence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("stable_baselines3")

from gradfolio.allocation.rl import PortfolioEnv  # noqa: E402
from gradfolio.allocation.rl.training import _optimizers, train_agent  # noqa: E402
from gradfolio.backtest import walk_forward  # noqa: E402
from gradfolio.checkpoint import load_state  # noqa: E402
from gradfolio.errors import ConfigError, SolverError  # noqa: E402

PPO = {"n_steps": 16, "batch_size": 128, "learning_rate": 3e-3, "gamma": 0.5}


def _env(returns: pd.DataFrame, cost: float, seed: int, n_envs: int = 32) -> PortfolioEnv:
    return PortfolioEnv(returns, 5, episode_length=20, cost=cost, n_envs=n_envs, seed=seed)


def _equal(X: torch.Tensor) -> torch.Tensor:
    return torch.full((X.shape[0], X.shape[-1]), 1 / X.shape[-1], dtype=X.dtype)


@pytest.mark.slow
def test_ppo_beats_equal_weight_net_of_costs_and_trades_less_with_costs(planted: pd.DataFrame) -> None:
    """On held-out days of a market where asset 0 drifts up, PPO (trained on the first 200 days, 10 bps)
    beats 1/N net of costs for every seed; trained without costs, the same seeds trade far more: costs
    are in the reward, not ignored (FinRL's portfolio env ignores its transaction_cost_pct)."""
    train, test_start = planted.iloc[:200], planted.index[200]
    turnovers = []
    for seed in (1, 2, 3):
        agents = {f"cost {c}": train_agent(_env(train, c, seed), "ppo", 4096, seed=seed, algo_params=PPO) for c in (0.001, 0.0)}
        res = walk_forward({**agents, "ew": _equal}, planted, 5, cost=0.001, dtype=torch.float64, start=test_start)
        wealth = (1 + res.returns).prod()
        assert wealth["cost 0.001"] > wealth["ew"] * 1.3, (seed, wealth.to_dict())
        assert float(res.weights["cost 0.001"]["A0"].mean()) > 0.9  # not equal weights
        turnover = res.turnover.iloc[1:].mean()  # after buying in
        assert turnover["cost 0.001"] < turnover["cost 0.0"], (seed, turnover.to_dict())
        turnovers.append(turnover)
    total = sum(turnovers)
    assert total["cost 0.001"] < 0.5 * total["cost 0.0"], total.to_dict()


def test_same_seed_same_agent(planted: pd.DataFrame) -> None:
    def params(seed: int) -> list[torch.Tensor]:
        agent = train_agent(_env(planted, 0.001, 0, n_envs=8), "a2c", 256, seed=seed, algo_params={"n_steps": 4})
        return [p.detach().clone() for p in agent.model.policy.parameters()]

    a, b, c = params(5), params(5), params(6)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_checkpoint_and_resume(planted: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "agents" / "ppo" / "agent.pt"
    kw = {"seed": 2, "algo_params": {"n_steps": 8, "batch_size": 64}, "checkpoint": path, "checkpoint_every": 128}
    first = train_agent(_env(planted, 0.001, 2, n_envs=8), "ppo", 512, **kw)
    state = load_state(path)
    assert state["num_timesteps"] == 512 and "policy" in state and state["optimizers"]
    saved = {k: v.clone() for k, v in first.model.policy.state_dict().items()}
    again = train_agent(_env(planted, 0.001, 2, n_envs=8), "ppo", 512, resume=True, **kw)  # nothing left to do
    assert all(torch.equal(v, again.model.policy.state_dict()[k]) for k, v in saved.items())
    more = train_agent(_env(planted, 0.001, 2, n_envs=8), "ppo", 768, resume=True, **kw)
    assert more.model.num_timesteps == 768 and load_state(path)["num_timesteps"] == 768
    assert not all(torch.equal(v, more.model.policy.state_dict()[k]) for k, v in saved.items())
    with pytest.raises(ConfigError, match=r"other settings \(seed: checkpoint 2, now 3"):
        train_agent(_env(planted, 0.001, 2, n_envs=8), "ppo", 768, resume=True, **{**kw, "seed": 3})


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_init_continues_from_the_agents_policy(algo: str, planted: pd.DataFrame) -> None:
    """train_agent(init=agent) starts from the agent's policy and optimizers, not from a fresh initialisation:
    with a zero learning rate the continued policy IS the agent's; a fresh one is the seed's initialisation."""
    params = {"ppo": {"n_steps": 8, "batch_size": 32}, "sac": {"learning_starts": 8, "batch_size": 16,
              "policy_kwargs": {"net_arch": [16]}}}[algo]
    agent = train_agent(_env(planted.iloc[:150], 0.001, 1, n_envs=4), algo, 96, seed=1, algo_params=params)
    trained = {k: v.clone() for k, v in agent.model.policy.state_dict().items()}
    frozen = {**params, "learning_rate": 0.0}
    later = _env(planted, 0.001, 1, n_envs=4)  # the data up to a later date
    continued = train_agent(later, algo, 32, seed=1, algo_params=frozen, init=agent)
    assert continued.model.num_timesteps == 32 and continued.model is not agent.model
    # (SAC's target critic moves toward the critic by Polyak averaging even with a zero learning rate)
    learned = [k for k in trained if "critic_target" not in k]
    assert all(torch.equal(trained[k], continued.model.policy.state_dict()[k]) for k in learned)
    fresh = train_agent(_env(planted, 0.001, 1, n_envs=4), algo, 32, seed=1, algo_params=frozen)
    assert not all(torch.equal(trained[k], fresh.model.policy.state_dict()[k]) for k in learned)

    def steps(model: object) -> list[float]:
        return [float(o.state_dict()["state"][0]["step"]) for o in _optimizers(model).values()]

    # the optimizers' moments come along: their step counts add up; the agent's own are not touched
    assert steps(continued.model) == [a + b for a, b in zip(steps(agent.model), steps(fresh.model), strict=True)]
    moved = train_agent(_env(planted, 0.001, 1, n_envs=4), algo, 64, seed=1, algo_params=params, init=agent)
    assert all(torch.equal(v, agent.model.policy.state_dict()[k]) for k, v in trained.items())
    assert not all(torch.equal(v, moved.model.policy.state_dict()[k]) for k, v in trained.items())
    other = "a2c" if algo == "ppo" else "td3"
    with pytest.raises(ConfigError, match=f"init is a {type(agent.model).__name__} agent"):
        train_agent(_env(planted, 0.001, 1, n_envs=4), other, 8, seed=1, init=agent)


def test_off_policy_agent_checkpoints_its_optimizers(planted: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "sac.pt"
    params = {"learning_starts": 16, "batch_size": 16, "buffer_size": 1000, "policy_kwargs": {"net_arch": [16]}}
    agent = train_agent(_env(planted, 0.001, 0, n_envs=4), "sac", 64, seed=0, algo_params=params, checkpoint=path)
    state = load_state(path)
    assert set(state["optimizers"]) == {"Actor.optimizer", "ContinuousCritic.optimizer", "SAC.ent_coef_optimizer"}
    assert torch.equal(state["log_ent_coef"], agent.model.log_ent_coef.detach())
    resumed = train_agent(_env(planted, 0.001, 0, n_envs=4), "sac", 64, seed=0, algo_params=params, checkpoint=path,
                          resume=True)
    for k, v in agent.model.policy.state_dict().items():
        assert torch.equal(v, resumed.model.policy.state_dict()[k])


def test_divergence_stops_and_keeps_the_last_good_checkpoint(planted: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "agent.pt"
    wild = {"n_steps": 16, "batch_size": 64, "learning_rate": 1e8, "max_grad_norm": 1e30}
    with pytest.raises(SolverError, match=r"agent ppo diverged at step \d+.*NaN.*last good checkpoint \(step 256\) is kept"):
        train_agent(_env(planted, 0.001, 1, n_envs=16), "ppo", 4096, seed=1, algo_params=wild, checkpoint=path,
                    checkpoint_every=256)
    state = load_state(path)
    assert state["num_timesteps"] == 256
    assert all(bool(torch.isfinite(v).all()) for v in state["policy"].values())


def test_bad_agent_settings(planted: pd.DataFrame) -> None:
    env = _env(planted, 0.001, 0, n_envs=2)
    with pytest.raises(ConfigError, match=r"algo: unknown agent 'dqn'; choose one of \['a2c'"):
        train_agent(env, "dqn", 10)
    with pytest.raises(ConfigError, match="bad algo_params"):
        train_agent(env, "ppo", 10, algo_params={"no_such_param": 1})
    with pytest.raises(ConfigError, match="timesteps=0"):
        train_agent(env, "ppo", 0)
    assert np.isfinite(env.observation_size)
