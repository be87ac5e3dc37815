"""Plain NumPy reference implementations of the hedging market, for ``bench_hedging_env.py``.

Two peers of :class:`gradfolio.hedging.env.HedgingEnv` (per-day implied vol, delta-gamma policy):

- :func:`episode_per_path`: the design of Cao et al.'s companion code — one episode (path) at a
  time, a Python list of option positions, each valued with scalar Black-Scholes formulas;
- :func:`episode_vectorized`: the same algorithm as the torch environment written in NumPy,
  vectorized over paths (``(paths, days)`` position arrays).

Both take the market (spot, per-day implied vol, net client orders) as inputs, so that
``tests/hedging/test_env.py::test_numpy_references_of_the_benchmark_reproduce_the_env`` can check
that they produce the torch environment's P&L on the same paths (and :func:`hagan_np` its implied
vols). :func:`simulate_sabr_np`, :func:`hagan_np` and :func:`orders_np` draw the market in NumPy
(eqs. 50-56) for the throughput comparison. Everything is float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr


@dataclass(frozen=True)
class Setup:
    """The environment conventions both references share (defaults = the paper's)."""

    n_days: int = 30
    initial_contracts: float = -1.0
    client_maturity: int = 60
    hedge_maturity: int = 30
    contract_size: float = 100.0
    cost: float = 0.005
    days_per_year: int = 250


def simulate_sabr_np(n_paths, n_steps, s0, alpha, beta, rho, nu, mu, dt, rng):
    """SABR paths (eqs. 50-52) with NumPy, a loop over time as in Cao et al.'s ``_sabr_sim``."""
    qs = rng.standard_normal((n_paths, n_steps + 1))
    qi = rng.standard_normal((n_paths, n_steps + 1))
    qv = rho * qs + np.sqrt(1 - rho * rho) * qi
    vol = np.empty((n_paths, n_steps + 1))
    spot = np.empty((n_paths, n_steps + 1))
    vol[:, 0], spot[:, 0] = alpha, s0
    for t in range(n_steps):
        g = vol[:, t] * spot[:, t] ** (beta - 1)
        spot[:, t + 1] = spot[:, t] * np.exp((mu - g * g / 2) * dt + g * np.sqrt(dt) * qs[:, t])
        vol[:, t + 1] = vol[:, t] * np.exp(-nu * nu * 0.5 * dt + nu * qv[:, t] * np.sqrt(dt))
    return spot, vol


def hagan_np(f, k, t, alpha, beta, rho, nu):
    """Hagan's implied vol (eqs. 54-56) in NumPy."""
    x = (f * k) ** ((1 - beta) / 2)
    y = (1 - beta) * np.log(f / k)
    lam = alpha / (x * (1 + y * y / 24 + y**4 / 1920))
    psi = 1 + t * ((1 - beta) ** 2 * alpha * alpha / (24 * x * x) + rho * beta * nu * alpha / (4 * x) + nu * nu * (2 - 3 * rho * rho) / 24)
    phi = nu * x / alpha * np.log(f / k)
    with np.errstate(divide="ignore", invalid="ignore"):
        chi = np.log((np.sqrt(1 - 2 * rho * phi + phi * phi) + phi - rho) / (1 - rho))
        ratio = np.where(np.abs(phi) < 1e-8, 1.0, phi / chi)
    return np.where(np.abs(np.log(f / k)) < 1e-12, alpha * psi / f ** (1 - beta), lam * psi * ratio)


def orders_np(n_paths, n_days, rate, rng):
    """Net client contracts per path and day (column 0 zero), Poisson counts and fair signs."""
    counts = rng.poisson(rate, (n_paths, n_days))
    buys = rng.binomial(counts, 0.5)
    return np.concatenate([np.zeros((n_paths, 1)), counts - 2.0 * buys], axis=1)


def _bs(s, k, tau, vol):
    """Vectorized Black-Scholes call: price, delta, gamma (tau = 0 -> payoff, zero greeks)."""
    live = tau > 0
    tt = np.where(live, tau, 1.0)
    sq = vol * np.sqrt(tt)
    d1 = (np.log(s / k) + 0.5 * vol * vol * tt) / sq
    delta = ndtr(d1)
    price = s * delta - k * ndtr(d1 - sq)
    gamma = np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi) / (s * sq)
    return np.where(live, price, np.maximum(s - k, 0.0)), np.where(live, delta, 0.0), np.where(live, gamma, 0.0)


def episode_vectorized(spot, day_vol, orders, setup: Setup = Setup()):
    """Delta-gamma hedging episode on all paths, NumPy vectorized over paths. Returns daily P&L ``(paths, days)``."""
    P, T = spot.shape[0], setup.n_days
    yr, size = setup.days_per_year, setup.contract_size
    books = []
    for maturity in (setup.client_maturity, setup.hedge_maturity):
        books.append({"q": np.zeros((P, T + 1)), "k": np.ones((P, T + 1)), "m": maturity})
    client, hedges = books
    client["q"][:, 0] = setup.initial_contracts
    client["k"][:, 0] = spot[:, 0]

    def held_value(book, held_on, day):
        lo = max(0, held_on - book["m"] + 1)
        tau = (np.arange(lo, held_on + 1) + book["m"] - day) / yr
        p, d, g = _bs(spot[:, day, None], book["k"][:, lo : held_on + 1], tau, day_vol[:, day, None])
        q = book["q"][:, lo : held_on + 1] * size
        return (q * p).sum(1), (q * d).sum(1), (q * g).sum(1)

    pnl = np.zeros((P, T))
    for t in range(T):
        s = spot[:, t]
        hp, hd, hg = _bs(s, s, setup.hedge_maturity / yr, day_vol[:, t])
        port = [a + b for a, b in zip(held_value(client, t, t), held_value(hedges, t, t))]
        contracts = -port[2] / (hg * size)
        cost = setup.cost * hp * np.abs(contracts) * size
        hedges["q"][:, t], hedges["k"][:, t] = contracts, s
        value_t = port[0] + contracts * size * hp
        stock = -(port[1] + contracts * size * hd)
        value_next = held_value(client, t, t + 1)[0] + held_value(hedges, t, t + 1)[0]
        pnl[:, t] = value_next - value_t + stock * (spot[:, t + 1] - s) - cost
        client["q"][:, t + 1], client["k"][:, t + 1] = orders[:, t + 1], spot[:, t + 1]
    return pnl


def _bs_scalar(s, k, tau, vol):
    if tau <= 0:
        return max(s - k, 0.0), 0.0, 0.0
    sq = vol * math.sqrt(tau)
    d1 = (math.log(s / k) + 0.5 * vol * vol * tau) / sq
    nd1 = 0.5 * (1 + math.erf(d1 / math.sqrt(2)))
    price = s * nd1 - k * 0.5 * (1 + math.erf((d1 - sq) / math.sqrt(2)))
    return price, nd1, math.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi) / (s * sq)


def episode_per_path(spot, day_vol, orders, setup: Setup = Setup()):
    """Delta-gamma hedging, one path at a time with a list of option positions (Cao et al.'s design)."""
    P, T = spot.shape[0], setup.n_days
    yr, size = setup.days_per_year, setup.contract_size
    pnl = np.zeros((P, T))
    for p in range(P):
        S, V = spot[p].tolist(), day_vol[p].tolist()
        options = [(setup.initial_contracts, S[0], setup.client_maturity)]  # (contracts, strike, expiry day)

        def total(opts, day):
            out = [0.0, 0.0, 0.0]
            for q, k, e in opts:
                for i, v in enumerate(_bs_scalar(S[day], k, (e - day) / yr, V[day])):
                    out[i] += q * size * v
            return out

        for t in range(T):
            held = [o for o in options if o[2] > t]
            value, delta, gamma = total(held, t)
            hp, hd, hg = _bs_scalar(S[t], S[t], setup.hedge_maturity / yr, V[t])
            c = -gamma / (hg * size)
            held.append((c, S[t], t + setup.hedge_maturity))
            options.append(held[-1])
            value += c * size * hp
            stock = -(delta + c * size * hd)
            pnl[p, t] = total(held, t + 1)[0] - value + stock * (S[t + 1] - S[t]) - setup.cost * hp * abs(c) * size
            if orders[p, t + 1] != 0:
                options.append((float(orders[p, t + 1]), S[t + 1], t + 1 + setup.client_maturity))
    return pnl
