"""HedgingEnv: shapes, seeding, the P&L against a plain per-option recomputation, neutral trades, action maps."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfolio.errors import ConfigError
from gradfolio.hedging.blackscholes import bs_greeks
from gradfolio.hedging.config import EnvConfig, MarketConfig
from gradfolio.hedging.env import HedgingEnv
from gradfolio.hedging.sabr import hagan_implied_vol
from gradfolio.hedging.strategies import GreekHedge, baseline_policies

f64 = torch.float64


def make_env(n_paths=64, dtype=f64, **kwargs) -> HedgingEnv:
    return HedgingEnv(EnvConfig(**kwargs), n_paths, seed=0, dtype=dtype)


def test_reset_state_matches_closed_form():
    env = make_env()
    state = env.reset(seed=1)
    assert state.shape == (64, 5) and env.feature_names == HedgingEnv.FEATURES
    vol = hagan_implied_vol(10.0, 10.0, 30 / 250, 0.3 * math.sqrt(10), 0.5, 0.2, 0.3)  # per-day: K = s0, 30 days left
    client = bs_greeks(10.0, 10.0, 60 / 250, vol)
    hedge = bs_greeks(10.0, 10.0, 30 / 250, vol)
    expected = torch.tensor([10.0, -100 * float(client.gamma), 100 * float(hedge.gamma), -100 * float(client.vega), 100 * float(hedge.vega)], dtype=f64)
    torch.testing.assert_close(state, expected.expand(64, 5))


def test_episode_length_done_and_time_to_go():
    env = make_env(n_days=4, time_to_go=True)
    state = env.reset(seed=2)
    assert state.shape == (64, 6) and float(state[0, 5]) == 1.0
    for day in range(1, 5):
        state, reward, done, info = env.step(torch.zeros(64, 1))
        assert reward.shape == (64,) and info["day"] == day
        assert float(state[0, 5]) == pytest.approx((4 - day) / 4)
        assert bool(done.all()) == (day == 4) and bool(done.any()) == (day == 4)
    with pytest.raises(ConfigError, match="reset"):
        env.step(torch.zeros(64))


def test_seeding_is_deterministic():
    def play(env, seed):
        states, rewards = [env.reset(seed)], []
        for _ in range(env.config.n_days):
            s, r, _, _ = env.step(torch.full((env.n_paths,), 0.3))
            states.append(s)
            rewards.append(r)
        return torch.stack(states), torch.stack(rewards)

    a, b = make_env(n_days=6), make_env(n_days=6)
    sa, ra = play(a, 5)
    sb, rb = play(b, 5)
    assert torch.equal(sa, sb) and torch.equal(ra, rb)
    sc, _ = play(a, 6)
    assert not torch.equal(sa, sc)
    # Without a seed, reset continues the environment's own generator, seeded at construction.
    c, d = make_env(n_days=3), make_env(n_days=3)
    first_c, first_d = play(c, None), play(d, None)
    assert torch.equal(first_c[0], first_d[0]) and torch.equal(first_c[1], first_d[1])
    assert not torch.equal(play(c, None)[1], first_c[1])


def _reference_episode(env: HedgingEnv, contracts: torch.Tensor):
    """Plain per-path, per-option recomputation of the daily P&L and the observed portfolio greeks."""
    cfg, mkt = env.config, env.config.market
    size, yr = cfg.contract_size, mkt.days_per_year

    def vol(p, day, strike, tau_days):
        if cfg.implied_vol == "per_day":
            return float(env.day_vol[p, day])
        return float(hagan_implied_vol(float(env.spot[p, day]), strike, tau_days / yr, float(env.sabr_vol[p, day]), mkt.beta, mkt.rho, mkt.nu))

    def value(p, day, opts, what):
        total = 0.0
        for qty, strike, expiry in opts:
            g = bs_greeks(float(env.spot[p, day]), strike, (expiry - day) / yr, vol(p, day, strike, expiry - day))
            total += qty * size * float(getattr(g, what))
        return total

    pnl = torch.zeros(env.n_paths, cfg.n_days, dtype=f64)
    gammas = torch.zeros(env.n_paths, cfg.n_days, dtype=f64)
    for p in range(env.n_paths):
        opts = [(cfg.initial_contracts, float(env.spot[p, 0]), cfg.client_maturity_days)]
        for t in range(cfg.n_days):
            held = [o for o in opts if o[2] > t]
            gammas[p, t] = value(p, t, held, "gamma")
            s_t, c = float(env.spot[p, t]), float(contracts[p, t])
            hedge_price = float(bs_greeks(s_t, s_t, cfg.hedge_maturity_days / yr, vol(p, t, s_t, cfg.hedge_maturity_days)).price)
            held.append((c, s_t, t + cfg.hedge_maturity_days))
            opts.append(held[-1])
            v_t, delta_t = value(p, t, held, "price"), value(p, t, held, "delta")
            v_next = value(p, t + 1, held, "price")
            pnl[p, t] = v_next - v_t - delta_t * (float(env.spot[p, t + 1]) - s_t) - cfg.cost * hedge_price * abs(c) * size
            opts.append((float(env.orders.net[p, t + 1]), float(env.spot[p, t + 1]), t + 1 + cfg.client_maturity_days))
    return pnl, gammas


@pytest.mark.parametrize("implied_vol", ["per_day", "per_option"])
def test_pnl_matches_plain_per_option_recomputation(implied_vol):
    # Short maturities so that client and hedge options expire inside the episode.
    env = make_env(n_paths=3, n_days=8, client_maturity_days=4, hedge_maturity_days=3, arrival_rate=1.5, implied_vol=implied_vol)
    gen = torch.Generator().manual_seed(3)
    state = env.reset(seed=9)
    pnl, contracts, gammas = [], [], []
    for _ in range(8):
        gammas.append(state[:, 1])
        state, reward, _, info = env.step(torch.rand(3, generator=gen, dtype=f64))
        pnl.append(info["pnl"])
        contracts.append(info["contracts"])
        torch.testing.assert_close(reward, info["pnl"])
    ref_pnl, ref_gamma = _reference_episode(env, torch.stack(contracts, dim=1))
    torch.testing.assert_close(torch.stack(pnl, dim=1), ref_pnl, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(torch.stack(gammas, dim=1), ref_gamma, rtol=1e-9, atol=1e-9)


def test_delta_hedged_short_call_pnl_without_arrivals():
    # No client orders, no hedge options: P&L = -100 (C_T - C_0) + sum_t 100 Delta_t (S_{t+1} - S_t).
    env = make_env(n_paths=16, n_days=10, arrival_rate=0.0)
    episode = env.run_episode(GreekHedge(env, "delta"), seed=4)
    s, v = env.spot, env.day_vol
    days = torch.arange(11, dtype=f64)
    g = bs_greeks(s, s[:, :1], (60 - days) / 250, v)
    expected = -100 * (g.price[:, -1] - g.price[:, 0]) + (100 * g.delta[:, :-1] * torch.diff(s, dim=1)).sum(dim=1)
    torch.testing.assert_close(episode.total_pnl, expected, rtol=1e-10, atol=1e-10)
    assert torch.all(episode.contracts == 0) and torch.all(episode.cost == 0)


@pytest.mark.parametrize("implied_vol", ["per_day", "per_option"])
def test_delta_gamma_and_delta_vega_leave_the_book_exactly_neutral(implied_vol):
    env = make_env(n_paths=256, n_days=12, implied_vol=implied_vol)
    for target, key in (("delta_gamma", "gamma_after"), ("delta_vega", "vega_after")):
        policy = GreekHedge(env, target)
        state = env.reset(seed=21)
        for _ in range(12):
            before = state[:, 1] if key == "gamma_after" else state[:, 3]
            state, _, _, info = env.step(policy(state))
            assert float(info[key].abs().max()) <= 1e-11 * (1 + float(before.abs().max()))


def test_delta_neutral_stock_position():
    env = make_env(n_paths=8, n_days=3)
    state = env.reset(seed=1)
    _, _, _, info = env.step(torch.zeros(8))
    # Day 0: short one 60-day ATM call of 100 units -> long 100 * N(d1) shares.
    g = bs_greeks(10.0, 10.0, 60 / 250, env.day_vol[:, 0])
    torch.testing.assert_close(info["stock"], 100 * g.delta)


def test_cost_and_abs_pnl_reward():
    env = make_env(n_paths=32, n_days=2, reward="abs_pnl", cost=0.01)
    state = env.reset(seed=3)
    hedge_price = bs_greeks(10.0, 10.0, 30 / 250, env.day_vol[:, 0]).price
    _, reward, _, info = env.step(torch.ones(32))
    torch.testing.assert_close(info["cost"], 0.01 * hedge_price * info["contracts"].abs() * 100)
    torch.testing.assert_close(reward, -(info["pnl"] + info["cost"]).abs() - info["cost"])
    assert bool((info["cost"] > 0).all())


@pytest.mark.parametrize("action_map", ["gamma_vega", "gamma", "vega_fraction"])
def test_action_maps_round_trip_and_bounds(action_map):
    env = make_env(n_paths=128, action_map=action_map, a_max=1.5)
    state = env.reset(seed=8)
    n_gamma, n_vega = env.neutral_contracts(state)
    action = torch.rand(128, generator=torch.Generator().manual_seed(0), dtype=f64) * env.action_high
    contracts = env.action_to_contracts(state, action)
    torch.testing.assert_close(env.contracts_to_action(state, contracts), action)
    low, high = env.contract_range(state)
    assert torch.all(contracts >= low - 1e-12) and torch.all(contracts <= high + 1e-12)
    torch.testing.assert_close(env.action_to_contracts(state, torch.zeros(128, dtype=f64)), torch.zeros(128, dtype=f64) + (low if action_map != "vega_fraction" else 0))
    if action_map == "gamma_vega":
        torch.testing.assert_close(low, torch.minimum(torch.zeros_like(n_gamma), torch.minimum(n_gamma, n_vega)))
        torch.testing.assert_close(high, torch.maximum(torch.zeros_like(n_gamma), torch.maximum(n_gamma, n_vega)))
    if action_map == "vega_fraction":
        torch.testing.assert_close(contracts, action * n_vega)
        assert env.action_high == 1.5
    # Out-of-range actions are clipped to the bounds.
    torch.testing.assert_close(env.action_to_contracts(state, torch.full((128,), 9.0, dtype=f64)), env.action_to_contracts(state, torch.full((128,), env.action_high, dtype=f64)))


def test_bad_inputs_raise_config_error():
    env = make_env(n_paths=4)
    with pytest.raises(ConfigError, match="reset"):
        env.step(torch.zeros(4))
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="shape"):
        env.step(torch.zeros(5))
    with pytest.raises(ConfigError, match="n_paths"):
        HedgingEnv(EnvConfig(), 0)
    with pytest.raises(ValueError, match="rho"):
        EnvConfig(market=MarketConfig(rho=1.0))
    with pytest.raises(ValueError, match="sigma0"):
        MarketConfig(sigma0=-0.2)
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


@settings(max_examples=6, deadline=None)
@given(
    client=st.integers(2, 9), hedge=st.integers(1, 9), rate=st.floats(0.0, 2.0), kappa=st.floats(0.0, 0.02),
    implied_vol=st.sampled_from(["per_day", "per_option"]), action_map=st.sampled_from(["gamma_vega", "gamma", "vega_fraction"]),
    seed=st.integers(0, 10_000),
)
def test_pnl_matches_recomputation_for_random_conventions(client, hedge, rate, kappa, implied_vol, action_map, seed):
    env = make_env(n_paths=2, n_days=6, client_maturity_days=client, hedge_maturity_days=hedge, arrival_rate=rate,
                   cost=kappa, implied_vol=implied_vol, action_map=action_map)
    gen = torch.Generator().manual_seed(seed)
    state = env.reset(seed=seed)
    pnl, contracts = [], []
    for _ in range(6):
        state, _, _, info = env.step(torch.rand(2, 1, generator=gen, dtype=f64))
        pnl.append(info["pnl"])
        contracts.append(info["contracts"])
    ref_pnl, _ = _reference_episode(env, torch.stack(contracts, dim=1))
    torch.testing.assert_close(torch.stack(pnl, dim=1), ref_pnl, rtol=1e-9, atol=1e-9)


def test_vega_fraction_map_reaches_vega_neutral_and_clips_the_rest():
    env = make_env(n_paths=128, n_days=3, action_map="vega_fraction", a_max=1.0)
    state = env.reset(seed=4)
    _, _, _, info = env.step(GreekHedge(env, "delta_vega")(state))
    assert float(info["vega_after"].abs().max()) < 1e-10
    state = env.reset(seed=4)
    n_gamma, n_vega = env.neutral_contracts(state)
    action = GreekHedge(env, "delta_gamma")(state)
    torch.testing.assert_close(action, (n_gamma / n_vega).clamp(0.0, 1.0))
