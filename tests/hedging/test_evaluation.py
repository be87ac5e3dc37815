"""Policy evaluation: rollouts over episodes and the P&L metrics table (skfolio as the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skfolio.measures import cvar as sk_cvar
from skfolio.measures import value_at_risk as sk_var

from gradfolio.errors import ConfigError
from gradfolio.hedging.baselines import baseline_policies
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.env import HedgingEnv
from gradfolio.hedging.evaluation import evaluate_policies, metrics_table, pnl_metrics, rollout

f64 = torch.float64


@pytest.fixture(scope="module")
def env() -> HedgingEnv:
    return HedgingEnv(EnvConfig(n_days=10), n_paths=400, seed=0, dtype=f64)


def test_pnl_metrics_match_numpy_and_skfolio():
    pnl = torch.tensor(np.random.default_rng(0).standard_t(4, size=999) * 10 - 2, dtype=f64)
    m = pnl_metrics(pnl, level=0.95, risk_aversion=1.645)
    x = pnl.numpy()
    assert m["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert m["std"] == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert m["mean_std"] == pytest.approx(x.mean() - 1.645 * x.std(ddof=1), rel=1e-12)
    assert m["var_95"] == pytest.approx(sk_var(x, beta=0.95), rel=1e-12)
    assert m["cvar_95"] == pytest.approx(sk_cvar(x, beta=0.95), rel=1e-12)
    with pytest.raises(ConfigError, match="2 paths"):
        pnl_metrics(pnl[:1])


def test_rollout_stacks_episodes_and_is_reproducible(env):
    policy = baseline_policies(env, ["delta_gamma"])["delta_gamma"]
    two = rollout(env, policy, n_episodes=2, seed=5)
    assert two.pnl.shape == (800, 10)
    first = rollout(env, policy, n_episodes=1, seed=5)
    second = rollout(env, policy, n_episodes=1, seed=6)
    torch.testing.assert_close(two.pnl, torch.cat([first.pnl, second.pnl]))
    with pytest.raises(ConfigError, match="n_episodes"):
        rollout(env, policy, n_episodes=0)


def test_metrics_table_for_baselines_and_any_policy(env):
    policies = dict(baseline_policies(env))
    policies["half"] = lambda state: torch.full((state.shape[0], 1), 0.5, dtype=state.dtype)
    net = torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.Sigmoid()).double()
    policies["network"] = net
    results = evaluate_policies(env, policies, n_episodes=1, seed=3)
    table = metrics_table(results)
    assert list(table.index) == ["delta", "delta_gamma", "delta_vega", "half", "network"]
    assert list(table.columns) == ["mean", "std", "mean_std", "var_95", "cvar_95", "cost", "contracts"]
    for name, ep in results.items():
        assert table.loc[name, "mean"] == pytest.approx(float(ep.total_pnl.mean()), rel=1e-12)
        assert table.loc[name, "cost"] == pytest.approx(float(ep.cost.sum(dim=1).mean()), rel=1e-12)
    # Delta hedging trades no option (up to the rounding of the action map), the others do.
    assert table.loc["delta", "cost"] < 1e-12 and table.loc["delta_gamma", "cost"] > 0.01
    # Every policy saw the same market: delta hedging P&L is reproduced on a fresh run with the same seed.
    torch.testing.assert_close(results["delta"].pnl, rollout(env, policies["delta"], seed=3).pnl)
    with pytest.raises(ConfigError, match="no policy"):
        evaluate_policies(env, {})
