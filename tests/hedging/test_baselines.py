"""Delta, delta-gamma and delta-vega baselines: the contracts each trades, the action that trades
them under every action map (clipped where unreachable), the named set, unknown names refused, and
the P&L spread of delta-gamma against delta hedging in float32."""

from __future__ import annotations

import pytest
import torch

from gradfolio.errors import ConfigError
from gradfolio.hedging.baselines import BASELINES, GreekHedge, baseline_policies
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.env import HedgingEnv

f64 = torch.float64


def make_env(n_paths=64, dtype=f64, **kwargs) -> HedgingEnv:
    return HedgingEnv(EnvConfig(**kwargs), n_paths, seed=0, dtype=dtype)


@pytest.mark.parametrize("action_map", ["gamma_vega", "gamma", "vega_fraction"])
def test_contracts_are_none_or_the_greek_neutral_amounts(action_map):
    env = make_env(n_paths=32, action_map=action_map, a_max=1.5)
    state = env.reset(seed=6)
    n_gamma, n_vega = env.neutral_contracts(state)
    assert not torch.allclose(n_gamma, n_vega)
    expected = {"delta": torch.zeros(32, dtype=f64), "delta_gamma": n_gamma, "delta_vega": n_vega}
    for name, contracts in expected.items():
        hedge = GreekHedge(env, name)
        assert torch.equal(hedge.contracts(state), contracts), name
        # the action is the environment's action map applied to those contracts
        assert torch.equal(hedge(state), env.contracts_to_action(state, contracts)), name


def test_gamma_vega_map_trades_exactly_the_neutral_amounts():
    env = make_env(n_paths=32, n_days=4)
    state = env.reset(seed=9)
    for name in BASELINES:
        hedge = GreekHedge(env, name)
        torch.testing.assert_close(env.action_to_contracts(state, hedge(state)), hedge.contracts(state),
                                   rtol=1e-12, atol=1e-12)


def test_baseline_policies_are_named_and_selectable():
    env = make_env(n_paths=4)
    policies = baseline_policies(env)
    assert list(policies) == ["delta", "delta_gamma", "delta_vega"] == list(BASELINES)
    assert [p.target for p in policies.values()] == list(BASELINES)  # type: ignore[attr-defined]
    assert list(baseline_policies(env, ["delta_vega"])) == ["delta_vega"]


def test_unknown_baseline_raises_config_error():
    env = make_env(n_paths=4)
    with pytest.raises(ConfigError, match="strategy"):
        GreekHedge(env, "gamma_only")  # type: ignore[arg-type]


def test_float32_and_baselines_run():
    env = make_env(n_paths=400, dtype=torch.float32)
    std = {}
    for name, policy in baseline_policies(env).items():
        ep = env.run_episode(policy, seed=1)
        assert ep.pnl.shape == (400, 30) and ep.pnl.dtype == torch.float32, name
        assert torch.isfinite(ep.pnl).all(), name
        std[name] = float(ep.total_pnl.std())
    # Delta-gamma hedging cuts the P&L spread of delta hedging on the paper's market.
    assert std["delta_gamma"] < 0.7 * std["delta"]


def test_vega_fraction_map_reaches_vega_neutral_and_clips_the_rest():
    env = make_env(n_paths=128, n_days=3, action_map="vega_fraction", a_max=1.0)
    state = env.reset(seed=4)
    _, _, _, info = env.step(GreekHedge(env, "delta_vega")(state))
    assert float(info["vega_after"].abs().max()) < 1e-10
    state = env.reset(seed=4)
    n_gamma, n_vega = env.neutral_contracts(state)
    action = GreekHedge(env, "delta_gamma")(state)
    torch.testing.assert_close(action, (n_gamma / n_vega).clamp(0.0, 1.0))


def test_hedging_strategies_are_built_by_name_through_the_registry() -> None:
    from gradfolio.errors import ConfigError
    from gradfolio.hedging import HEDGES, HedgingEnv
    from gradfolio.hedging.config import EnvConfig

    env = HedgingEnv(EnvConfig(), 3, seed=0)
    assert HEDGES.names() == ["delta", "delta_gamma", "delta_vega"]
    policies = baseline_policies(env, ["delta_vega", "delta"])
    assert list(policies) == ["delta_vega", "delta"]
    assert [p.target for p in policies.values()] == ["delta_vega", "delta"] and policies["delta"].env is env
    with pytest.raises(ConfigError, match=r"^evaluation.strategies\[1\]: unknown hedging strategy 'gamma'; choose one of"):
        baseline_policies(env, ["delta", "gamma"])
    with pytest.raises(ConfigError, match=r"^hedging strategy.target: Input should be 'delta', 'delta_gamma' or"):
        HEDGES.build("delta", context={"env": env}, target="vega")
