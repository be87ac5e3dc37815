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
    """Plain per-path, per-option recomputation (scalar ``bs_greeks`` per option) of the daily P&L and greeks.

    Covers the client-book options: client types (maturity, strike multiple) per order, and a rate
    and dividend yield (Black-Scholes at ``r, q``, Hagan at the forward ``S e^{(r - q) tau}``, and the
    day's carry: dividends on the stock held minus interest on the cash financing options and stock).
    """
    cfg, mkt = env.config, env.config.market
    size, yr = cfg.contract_size, mkt.days_per_year
    r, q = mkt.rate, mkt.dividend
    types = cfg.client_types

    def vol(p, day, strike, tau_days):
        if cfg.implied_vol == "per_day":
            return float(env.day_vol[p, day])
        forward = float(env.spot[p, day]) * math.exp((r - q) * tau_days / yr)
        return float(hagan_implied_vol(forward, strike, tau_days / yr, float(env.sabr_vol[p, day]), mkt.beta, mkt.rho, mkt.nu))

    def book(p, day, opts) -> Greeks:
        """Sum over the options (contracts, strike, expiry day) of contracts x size x greeks on ``day``."""
        total = [0.0] * 4
        for qty, strike, expiry in opts:
            g = bs_greeks(float(env.spot[p, day]), strike, (expiry - day) / yr, vol(p, day, strike, expiry - day), r=r, q=q)
            for i, v in enumerate(g):
                total[i] += qty * size * float(v)
        return Greeks(*total)

    def arrivals(p, day):
        """The client options (contracts, strike, expiry day) opened on ``day`` (day 0: the initial position)."""
        s = float(env.spot[p, day])
        if env.orders.dim() == 2:
            qty = cfg.initial_contracts if day == 0 else float(env.orders[p, day])
            return [(qty, types[0][1] * s, day + types[0][0])]
        return [(float(env.orders[p, day, i]), k * s, day + m) for i, (m, k) in enumerate(types)]

    out = {name: torch.zeros(env.n_paths, cfg.n_days, dtype=f64) for name in Reference._fields}
    for p in range(env.n_paths):
        opts = arrivals(p, 0)
        for t in range(cfg.n_days):
            held = [o for o in opts if o[2] > t]
            s_t, s_next, c = float(env.spot[p, t]), float(env.spot[p, t + 1]), float(contracts[p, t])
            before = book(p, t, held)
            hedge = bs_greeks(s_t, s_t, cfg.hedge_maturity_days / yr, vol(p, t, s_t, cfg.hedge_maturity_days), r=r, q=q)
            held.append((c, s_t, t + cfg.hedge_maturity_days))
            opts.append(held[-1])
            after = book(p, t, held)
            cost = cfg.cost * float(hedge.price) * abs(c) * size
            stock_value = -after.delta * s_t
            carry = stock_value * math.expm1(q / yr) - (after.price + stock_value) * math.expm1(r / yr)
            row = {
                "pnl": book(p, t + 1, held).price - after.price - after.delta * (s_next - s_t) + carry - cost,
                "gamma": before.gamma, "hedge_gamma": size * float(hedge.gamma),
                "vega": before.vega, "hedge_vega": size * float(hedge.vega),
                "gamma_after": after.gamma, "vega_after": after.vega,
            }
            for name, value in row.items():
                out[name][p, t] = value
            opts.extend(arrivals(p, t + 1))
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


# ---------------------------------------------------------------- client-book options (issue 18)
CLIENT_OPTIONS = {"client_maturity_days": [3, 5, 9], "client_moneyness": [0.9, 1.15],
                      "market": MarketConfig(rate=0.03, dividend=0.012)}


@pytest.mark.parametrize("implied_vol", ["per_day", "per_option"])
@pytest.mark.parametrize("fields", [
    CLIENT_OPTIONS,
    {"client_maturity_days": [4, 7]},  # random maturities only
    {"client_moneyness": 1.1, "client_maturity_days": 5},  # one fixed out-of-the-money strike multiple
    {"client_moneyness": [0.85, 1.0, 1.2]},  # strike multiples only
    {"market": MarketConfig(rate=0.03)},  # rate only
    {"market": MarketConfig(dividend=0.012)},  # dividend only
    {"market": MarketConfig(rate=-0.01, dividend=0.04, beta=1.0, rho=-0.7)},
])
def test_client_types_strikes_rate_and_dividend_match_plain_recomputation(implied_vol, fields):
    env = make_env(n_paths=3, n_days=8, hedge_maturity_days=3, arrival_rate=1.5, implied_vol=implied_vol, **fields)
    gen = torch.Generator().manual_seed(5)
    states, info = _play(env, lambda state: torch.rand(3, generator=gen, dtype=f64), seed=13)
    ref = _reference_episode(env, info["contracts"])
    torch.testing.assert_close(info["pnl"], ref.pnl, rtol=1e-9, atol=1e-9)
    _assert_state_matches(states, ref)
    torch.testing.assert_close(info["gamma_after"], ref.gamma_after, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(info["vega_after"], ref.vega_after, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("valuation", [{"fused": True}, {"compiled": True}])
@pytest.mark.parametrize("implied_vol", ["per_day", "per_option"])
def test_fused_and_compiled_revaluation_agree_with_client_types_rate_and_dividend(implied_vol, valuation):
    """Several client books (maturities and strike multiples), a rate and a dividend, both vol modes,
    random actions: P&L, reward and state each day equal the default env's to 1e-10."""
    cfg = EnvConfig(n_days=12, hedge_maturity_days=5, implied_vol=implied_vol, **CLIENT_OPTIONS)
    a, b = HedgingEnv(cfg, 40, seed=1, dtype=f64), HedgingEnv(cfg, 40, seed=1, dtype=f64, **valuation)
    gen = torch.Generator().manual_seed(2)
    actions = torch.rand(12, 40, generator=gen, dtype=f64)
    sa, sb = a.reset(seed=4), b.reset(seed=4)
    for act in actions:
        sa, ra, _, ia = a.step(act)
        sb, rb, _, ib = b.step(act)
        torch.testing.assert_close(ib["pnl"], ia["pnl"], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(sb, sa, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(rb, ra, rtol=1e-10, atol=1e-10)


def test_client_types_books_strikes_and_uniform_draws():
    cfg = EnvConfig(n_days=5, arrival_rate=2.0, client_maturity_days=[20, 40, 90], client_moneyness=[0.8, 1.25])
    env = HedgingEnv(cfg, 30_000, seed=0, dtype=f64)
    env.reset(seed=6)
    types = cfg.client_types
    assert types == [(20, 0.8), (20, 1.25), (40, 0.8), (40, 1.25), (90, 0.8), (90, 1.25)]
    assert env.orders.shape == (30_000, 6, 6) and len(env.clients) == 6 and env.client is env.clients[0]
    assert [b.maturity_days for b in env.clients] == [20, 20, 40, 40, 90, 90]
    # Day 0: each path holds initial_contracts (-1) of exactly one type, drawn uniformly.
    day0 = env.orders[:, 0, :]
    assert torch.equal(day0.sum(dim=1), torch.full((30_000,), -1.0, dtype=f64))
    share = (day0 != 0).to(f64).mean(dim=0)
    assert float((share - 1 / 6).abs().max()) < 4 * math.sqrt(1 / 6 * 5 / 6 / 30_000)
    # Strikes: the type's multiple of the spot on the opening day.
    for book, (_, k) in zip(env.clients, types, strict=True):
        torch.testing.assert_close(book.strike[:, 0], k * env.spot[:, 0], rtol=0, atol=0)
    env.step(torch.zeros(30_000, dtype=f64))
    for book, (_, k) in zip(env.clients, types, strict=True):
        torch.testing.assert_close(book.strike[:, 1], k * env.spot[:, 1], rtol=0, atol=0)
        torch.testing.assert_close(book.quantity[:, 1], env.orders[:, 1, types.index((book.maturity_days, k))])
    # Orders: the types split each day's Skellam(1, 1) net uniformly; per type, net ~ Skellam(rate/12, rate/12).
    net = env.orders[:, 1:, :].reshape(-1, 6)
    torch.testing.assert_close(net.mean(dim=0), torch.zeros(6, dtype=f64), rtol=0, atol=4 * math.sqrt(2 / 6 / net.shape[0]))
    torch.testing.assert_close(net.var(dim=0), torch.full((6,), 2.0 / 6, dtype=f64), rtol=0.03, atol=0)
    corr = torch.corrcoef(net.T)
    assert float((corr - torch.eye(6, dtype=f64)).abs().max()) < 0.02  # thinned Poisson counts are independent


def test_one_type_in_a_list_is_the_default_draw():
    a = HedgingEnv(EnvConfig(n_days=6), 50, seed=0, dtype=f64)
    b = HedgingEnv(EnvConfig(n_days=6, client_maturity_days=[60], client_moneyness=[1.0]), 50, seed=0, dtype=f64)
    gen = torch.Generator().manual_seed(0)
    _, ia = _play(a, lambda s: torch.rand(50, generator=gen, dtype=f64), seed=3)
    gen = torch.Generator().manual_seed(0)
    _, ib = _play(b, lambda s: torch.rand(50, generator=gen, dtype=f64), seed=3)
    assert torch.equal(ia["pnl"], ib["pnl"])


def test_fixed_moneyness_shifts_every_client_strike():
    env = make_env(n_paths=8, n_days=4, client_moneyness=1.1)
    env.reset(seed=2)
    assert env.orders.shape == (8, 5)
    torch.testing.assert_close(env.client.strike[:, 0], 1.1 * env.spot[:, 0], rtol=0, atol=0)
    env.step(torch.zeros(8, dtype=f64))
    torch.testing.assert_close(env.client.strike[:, 1], 1.1 * env.spot[:, 1], rtol=0, atol=0)
    # The book holds the out-of-the-money call: its day-0 gamma and vega are the K = 1.1 S0 option's.
    g = bs_greeks(env.spot[:, 0], 1.1 * env.spot[:, 0], 60 / 250, env.day_vol[:, 0])
    fresh = make_env(n_paths=8, n_days=4, client_moneyness=1.1)
    state = fresh.reset(seed=2)
    torch.testing.assert_close(state[:, 1], -100 * g.gamma, rtol=1e-12, atol=0)
    torch.testing.assert_close(state[:, 3], -100 * g.vega, rtol=1e-12, atol=0)
    atm = bs_greeks(env.spot[:, 0], env.spot[:, 0], 60 / 250, env.day_vol[:, 0])
    assert bool((g.vega < atm.vega).all())


def test_delta_hedge_with_carry_has_zero_mean_pnl_under_the_pricing_measure():
    # GBM (nu = 0, beta = 1: Hagan's vol is alpha exactly) simulated under the pricing measure (mu = r - q):
    # the delta-hedged short call financed at r, with dividends q on the stock, earns 0 on average.
    r, q = 0.05, 0.02
    market = MarketConfig(beta=1.0, nu=0.0, rho=-0.7, rate=r, dividend=q, mu=r - q)
    env = make_env(n_paths=20_000, n_days=30, arrival_rate=0.0, market=market)
    pnl = env.run_episode(GreekHedge(env, "delta"), seed=11).total_pnl
    se = float(pnl.std()) / math.sqrt(pnl.numel())
    assert abs(float(pnl.mean())) < 4 * se
    # The test has power: the carry of this position, about (r V - (r - q) Delta S) T per path, is far outside the
    # noise, so leaving it out (or pricing without r, q) would fail the first assertion.
    g = bs_greeks(10.0, 10.0, 60 / 250, 0.3, r=r, q=q)
    financing = 100 * (r * float(g.price) - (r - q) * float(g.delta) * 10.0) * 30 / 250
    assert abs(financing) > 20 * se


def test_rate_and_dividend_enter_the_forward_of_the_per_day_vol():
    market = MarketConfig(rate=0.03, dividend=0.012)
    env = make_env(n_paths=5, n_days=4, market=market)
    env.reset(seed=1)
    days_left = torch.arange(4, -1, -1, dtype=f64) / 250
    forward = env.spot * torch.exp(0.018 * days_left)
    expected = hagan_implied_vol(forward, 10.0, days_left, env.sabr_vol, 0.5, 0.2, 0.3)
    torch.testing.assert_close(env.day_vol, expected, rtol=1e-13, atol=0)
    base = make_env(n_paths=5, n_days=4)
    base.reset(seed=1)
    assert not torch.equal(env.day_vol[:, :-1], base.day_vol[:, :-1])


@pytest.mark.parametrize(("fields", "needle"), [
    ({"client_maturity_days": -5}, "client_maturity_days"),
    ({"client_maturity_days": 0}, "client_maturity_days"),
    ({"client_maturity_days": [20, -1]}, "client_maturity_days"),
    ({"client_maturity_days": []}, "client_maturity_days"),
    ({"client_moneyness": 0.0}, "client_moneyness"),
    ({"client_moneyness": [1.0, -0.5]}, "client_moneyness"),
    ({"client_moneyness": []}, "client_moneyness"),
    ({"client_moneyness": float("inf")}, "client_moneyness"),
    ({"market": {"rate": 1.5}}, "market.rate"),
    ({"market": {"rate": float("nan")}}, "market.rate"),
    ({"market": {"dividend": -2.0}}, "market.dividend"),
])
def test_bad_client_book_options_raise_naming_the_field(fields, needle):
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        EnvConfig(**fields)


def test_market_with_client_types_must_have_a_type_axis():
    env = make_env(n_paths=4, n_days=3, client_maturity_days=[5, 9])
    env.reset(seed=0)
    market = env.market
    assert market.orders.shape == (4, 4, 2)
    with pytest.raises(ConfigError, match=r"market.orders has shape \(4, 4\); expected \(4, 4, 2\)"):
        env.reset(market=market._replace(orders=market.orders.sum(dim=-1)))
    replay = make_env(n_paths=4, n_days=3, client_maturity_days=[5, 9])
    replay.reset(market=market)
    assert torch.equal(replay.state, env.state)
