"""HedgingEnv: shapes, seeding, P&L and greeks against a plain per-option recomputation, neutral trades
(the delta-gamma / delta-vega baselines played against that recomputation), action maps, market replay
(CPU and CUDA) and the benchmark's NumPy references."""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfolio.errors import ConfigError
from gradfolio.hedging.baselines import GreekHedge
from gradfolio.hedging.blackscholes import Greeks, bs_greeks
from gradfolio.hedging.config import EnvConfig, MarketConfig
from gradfolio.hedging.env import HedgingEnv, Market
from gradfolio.hedging.sabr import hagan_implied_vol

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


class Reference(NamedTuple):
    """What :func:`_reference_episode` recomputes, each ``(paths, n_days)``."""

    pnl: torch.Tensor
    gamma: torch.Tensor  # portfolio gamma before the day's trade (state column 1)
    hedge_gamma: torch.Tensor  # one contract of the day's hedging option (column 2)
    vega: torch.Tensor  # portfolio vega before the trade (column 3)
    hedge_vega: torch.Tensor  # column 4
    gamma_after: torch.Tensor  # portfolio gamma right after the trade
    vega_after: torch.Tensor


def _reference_episode(env: HedgingEnv, contracts: torch.Tensor) -> Reference:
    """Plain per-path, per-option recomputation (scalar ``bs_greeks`` per option) of the daily P&L and greeks."""
    cfg, mkt = env.config, env.config.market
    size, yr = cfg.contract_size, mkt.days_per_year

    def vol(p, day, strike, tau_days):
        if cfg.implied_vol == "per_day":
            return float(env.day_vol[p, day])
        return float(hagan_implied_vol(float(env.spot[p, day]), strike, tau_days / yr, float(env.sabr_vol[p, day]), mkt.beta, mkt.rho, mkt.nu))

    def book(p, day, opts) -> Greeks:
        """Sum over the options (contracts, strike, expiry day) of contracts x size x greeks on ``day``."""
        total = [0.0] * 4
        for qty, strike, expiry in opts:
            g = bs_greeks(float(env.spot[p, day]), strike, (expiry - day) / yr, vol(p, day, strike, expiry - day))
            for i, v in enumerate(g):
                total[i] += qty * size * float(v)
        return Greeks(*total)

    out = {name: torch.zeros(env.n_paths, cfg.n_days, dtype=f64) for name in Reference._fields}
    for p in range(env.n_paths):
        opts = [(cfg.initial_contracts, float(env.spot[p, 0]), cfg.client_maturity_days)]
        for t in range(cfg.n_days):
            held = [o for o in opts if o[2] > t]
            s_t, s_next, c = float(env.spot[p, t]), float(env.spot[p, t + 1]), float(contracts[p, t])
            before = book(p, t, held)
            hedge = bs_greeks(s_t, s_t, cfg.hedge_maturity_days / yr, vol(p, t, s_t, cfg.hedge_maturity_days))
            held.append((c, s_t, t + cfg.hedge_maturity_days))
            opts.append(held[-1])
            after = book(p, t, held)
            cost = cfg.cost * float(hedge.price) * abs(c) * size
            row = {
                "pnl": book(p, t + 1, held).price - after.price - after.delta * (s_next - s_t) - cost,
                "gamma": before.gamma, "hedge_gamma": size * float(hedge.gamma),
                "vega": before.vega, "hedge_vega": size * float(hedge.vega),
                "gamma_after": after.gamma, "vega_after": after.vega,
            }
            for name, value in row.items():
                out[name][p, t] = value
            opts.append((float(env.orders[p, t + 1]), s_next, t + 1 + cfg.client_maturity_days))
    return Reference(**out)


def _play(env: HedgingEnv, policy, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One episode stepped by hand: the states ``(n_days, paths, features)`` seen and the stacked ``info`` ``(paths, n_days)``."""
    state = env.reset(seed=seed)
    states, infos = [], []
    for _ in range(env.config.n_days):
        states.append(state)
        state, reward, _, info = env.step(policy(state))
        infos.append({**info, "reward": reward})
    return torch.stack(states), {k: torch.stack([i[k] for i in infos], dim=1) for k in infos[0] if k != "day"}


def _assert_state_matches(states: torch.Tensor, ref: Reference) -> None:
    for column, name in enumerate(("gamma", "hedge_gamma", "vega", "hedge_vega"), start=1):
        torch.testing.assert_close(states[:, :, column].T, getattr(ref, name), rtol=1e-9, atol=1e-9, msg=name)


@pytest.mark.parametrize("implied_vol", ["per_day", "per_option"])
def test_pnl_and_state_match_plain_per_option_recomputation(implied_vol):
    # Short maturities so that client and hedge options expire inside the episode.
    env = make_env(n_paths=3, n_days=8, client_maturity_days=4, hedge_maturity_days=3, arrival_rate=1.5, implied_vol=implied_vol)
    gen = torch.Generator().manual_seed(3)
    states, info = _play(env, lambda state: torch.rand(3, generator=gen, dtype=f64), seed=9)
    torch.testing.assert_close(info["reward"], info["pnl"])
    ref = _reference_episode(env, info["contracts"])
    torch.testing.assert_close(info["pnl"], ref.pnl, rtol=1e-9, atol=1e-9)
    _assert_state_matches(states, ref)
    torch.testing.assert_close(info["gamma_after"], ref.gamma_after, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(info["vega_after"], ref.vega_after, rtol=1e-9, atol=1e-9)


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
@pytest.mark.parametrize(("target", "greek"), [("delta_gamma", "gamma"), ("delta_vega", "vega")])
def test_delta_gamma_and_delta_vega_leave_the_book_exactly_neutral(implied_vol, target, greek):
    # The env's trades (from the state) against the book's greeks recomputed option by option.
    env = make_env(n_paths=16, n_days=12, client_maturity_days=8, hedge_maturity_days=5, implied_vol=implied_vol)
    states, info = _play(env, GreekHedge(env, target), seed=21)
    ref = _reference_episode(env, info["contracts"])
    _assert_state_matches(states, ref)
    after, before = getattr(ref, f"{greek}_after"), getattr(ref, greek)
    assert float(after.abs().max()) <= 1e-12 * (1 + float(before.abs().max()))
    assert float(before.abs().median()) > 1e-2  # the trades had something to neutralize


def test_delta_neutral_stock_position():
    env = make_env(n_paths=8, n_days=3)
    env.reset(seed=1)
    _, _, _, info = env.step(torch.zeros(8))
    # Day 0: short one 60-day ATM call of 100 units -> long 100 * N(d1) shares.
    g = bs_greeks(10.0, 10.0, 60 / 250, env.day_vol[:, 0])
    torch.testing.assert_close(info["stock"], 100 * g.delta)


def test_cost_and_abs_pnl_reward():
    env = make_env(n_paths=32, n_days=2, reward="abs_pnl", cost=0.01)
    env.reset(seed=3)
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
    states, info = _play(env, lambda state: torch.rand(2, 1, generator=gen, dtype=f64), seed=seed)
    ref = _reference_episode(env, info["contracts"])
    torch.testing.assert_close(info["pnl"], ref.pnl, rtol=1e-9, atol=1e-9)
    _assert_state_matches(states, ref)


def test_replaying_a_market_reproduces_the_episode():
    a, b = make_env(n_paths=32, n_days=6), HedgingEnv(EnvConfig(n_days=6), 32, seed=99, dtype=f64)
    policy = lambda state: torch.full((state.shape[0],), 0.4, dtype=state.dtype)  # noqa: E731
    first = a.run_episode(policy, seed=5)
    replay = b.run_episode(policy, market=a.market)
    for x, y in zip(replay, first, strict=True):
        assert torch.equal(x, y)
    # Another dtype: the market is converted.
    c = HedgingEnv(EnvConfig(n_days=6), 32, dtype=torch.float32)
    assert c.run_episode(policy, market=a.market).pnl.dtype == torch.float32
    assert torch.equal(c.spot, a.spot.float()) and torch.equal(c.orders, a.orders.float())


def test_bad_markets_raise_config_error():
    env = make_env(n_paths=4, n_days=3)
    env.reset(seed=0)
    market = env.market
    with pytest.raises(ConfigError, match="both a seed and a market"):
        env.reset(1, market=market)
    with pytest.raises(ConfigError, match=r"market.orders has shape \(4, 3\)"):
        env.reset(market=market._replace(orders=market.orders[:, :3]))
    with pytest.raises(ConfigError, match="market.sabr_vol must be > 0"):
        env.reset(market=market._replace(sabr_vol=-market.sabr_vol))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("implied_vol", ["per_day", "per_option"])
def test_cuda_episode_matches_cpu_on_the_same_market(implied_vol):
    config = EnvConfig(n_days=12, implied_vol=implied_vol)
    cpu = HedgingEnv(config, 256, seed=0, dtype=f64)
    gpu = HedgingEnv(config, 256, seed=0, device="cuda", dtype=f64)
    for target in ("delta", "delta_gamma", "delta_vega"):
        on_cpu = cpu.run_episode(GreekHedge(cpu, target), seed=5)
        on_gpu = gpu.run_episode(GreekHedge(gpu, target), market=Market(*(x.cuda() for x in cpu.market)))
        assert gpu.state.device.type == "cuda" and gpu.day_vol.device.type == "cuda"
        for x, y in zip(on_gpu, on_cpu, strict=True):
            assert x.device.type == "cuda" and x.dtype == f64
            torch.testing.assert_close(x.cpu(), y, rtol=1e-10, atol=1e-10)
    simulated = gpu.run_episode(GreekHedge(gpu, "delta_gamma"), seed=5)
    assert simulated.pnl.device.type == "cuda" and bool(torch.isfinite(simulated.pnl).all())


def test_numpy_references_of_the_benchmark_reproduce_the_env(monkeypatch):
    # benchmarks/bench_hedging_env.py times these NumPy peers against the env: they must do the same work.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    ref = importlib.import_module("hedging_numpy_reference")
    env = HedgingEnv(EnvConfig(), 16, seed=0, dtype=f64)
    episode = env.run_episode(GreekHedge(env, "delta_gamma"), seed=7)
    spot, sabr_vol, orders = (x.numpy() for x in env.market)
    m = env.config.market
    day_vol = ref.hagan_np(spot, m.s0, np.arange(env.config.n_days, -1, -1) / m.days_per_year, sabr_vol, m.beta, m.rho, m.nu)
    np.testing.assert_allclose(day_vol, env.day_vol.numpy(), rtol=1e-13, atol=0)
    for episode_fn in (ref.episode_vectorized, ref.episode_per_path):
        np.testing.assert_allclose(episode_fn(spot, day_vol, orders), episode.pnl.numpy(), rtol=0, atol=1e-10)


def test_fused_revaluation_agrees_with_the_default_and_is_opt_in() -> None:
    """``fused=True`` (one pass per book per night) gives the default per-slot valuation's episode
    up to floating-point reassociation; the default is what the published agent rows were made with."""
    from gradfolio.hedging.baselines import baseline_policies

    cfg = EnvConfig(arrival_rate=1.7, cost=0.003)
    plain = HedgingEnv(cfg, 64, seed=3, dtype=torch.float64)
    fused = HedgingEnv(cfg, 64, seed=3, dtype=torch.float64, fused=True)
    assert not plain.fused and fused.fused
    for name in ("delta_gamma", "delta_vega"):
        a = plain.run_episode(baseline_policies(plain, [name])[name], 11)
        b = fused.run_episode(baseline_policies(fused, [name])[name], 11)
        torch.testing.assert_close(b.total_pnl, a.total_pnl, rtol=1e-10, atol=1e-9)
        torch.testing.assert_close(b.reward, a.reward, rtol=1e-10, atol=1e-9)
        torch.testing.assert_close(b.cost, a.cost, rtol=1e-10, atol=1e-9)
