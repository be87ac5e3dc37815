"""Black-Scholes prices and greeks: textbook values, put-call parity, autograd and finite differences."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfolio.errors import ConfigError
from gradfolio.hedging.blackscholes import (
    bs_delta,
    bs_gamma,
    bs_greeks,
    bs_price,
    bs_vega,
    expired_greeks,
    live_greeks_unchecked,
)

f64 = torch.float64


def test_textbook_values():
    # Hull, Options Futures and Other Derivatives: S=K=100, T=1, r=5%, sigma=20% -> C=10.4506, P=5.5735.
    assert float(bs_price(100.0, 100.0, 1.0, 0.2, r=0.05)) == pytest.approx(10.450583572185565, abs=1e-10)
    assert float(bs_price(100.0, 100.0, 1.0, 0.2, r=0.05, call=False)) == pytest.approx(5.573526022256971, abs=1e-10)
    # Hull example 15.6: S=42, K=40, r=10%, sigma=20%, T=0.5 -> c=4.76, p=0.81
    assert float(bs_price(42.0, 40.0, 0.5, 0.2, r=0.1)) == pytest.approx(4.7594, abs=1e-4)
    assert float(bs_price(42.0, 40.0, 0.5, 0.2, r=0.1, call=False)) == pytest.approx(0.8086, abs=1e-4)


def test_atm_call_of_the_paper_is_about_60_dollars():
    # 60-day ATM call on 100 units, S0 = 10, 30% vol, 250 days a year (ANADDH Section 6.1.1: "about $60").
    price = 100 * float(bs_price(10.0, 10.0, 60 / 250, 0.3))
    assert price == pytest.approx(100 * 10 * (2 * 0.5 * math.erf(0.3 * math.sqrt(60 / 250) / 2 / math.sqrt(2))), rel=1e-12)
    assert 55 < price < 62


@settings(max_examples=60, deadline=None)
@given(
    s=st.floats(1.0, 200.0), k=st.floats(1.0, 200.0), tau=st.floats(0.01, 3.0), vol=st.floats(0.05, 1.5),
    r=st.floats(-0.02, 0.1), q=st.floats(0.0, 0.08),
)
def test_put_call_parity(s, k, tau, vol, r, q):
    call = bs_greeks(s, k, tau, vol, r, q, call=True)
    put = bs_greeks(s, k, tau, vol, r, q, call=False)
    assert float(call.price - put.price) == pytest.approx(s * math.exp(-q * tau) - k * math.exp(-r * tau), abs=1e-9 * (s + k))
    assert float(call.delta - put.delta) == pytest.approx(math.exp(-q * tau), abs=1e-12)
    assert float(call.gamma) == pytest.approx(float(put.gamma), rel=1e-12)
    assert float(call.vega) == pytest.approx(float(put.vega), rel=1e-12)


@pytest.mark.parametrize("call", [True, False])
def test_greeks_match_autograd(call):
    gen = torch.Generator().manual_seed(0)
    spot = (5 + 10 * torch.rand(64, generator=gen, dtype=f64)).requires_grad_()
    strike = 5 + 10 * torch.rand(64, generator=gen, dtype=f64)
    tau = 0.05 + torch.rand(64, generator=gen, dtype=f64)
    vol = (0.1 + 0.5 * torch.rand(64, generator=gen, dtype=f64)).requires_grad_()
    g = bs_greeks(spot, strike, tau, vol, r=0.03, q=0.01, call=call)
    d_spot, d_vol = torch.autograd.grad(g.price.sum(), (spot, vol), create_graph=True)
    (dd_spot,) = torch.autograd.grad(d_spot.sum(), spot)
    torch.testing.assert_close(g.delta, d_spot, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g.gamma, dd_spot, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(g.vega, d_vol / 100, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("r", "q"), [(0.01, 0.0), (0.03, 0.012), (-0.005, 0.04)])
@pytest.mark.parametrize("call", [True, False])
def test_greeks_match_central_differences(call, r, q):
    s, k, tau, vol = 10.3, 10.0, 45 / 250, 0.27
    h, hv = 1e-4, 1e-6
    p = lambda s_, v_: float(bs_price(torch.tensor(s_, dtype=f64), k, tau, v_, r, q, call))  # noqa: E731
    assert float(bs_delta(s, k, tau, vol, r, q, call)) == pytest.approx((p(s + h, vol) - p(s - h, vol)) / (2 * h), rel=1e-7)
    assert float(bs_gamma(s, k, tau, vol, r, q, call)) == pytest.approx(
        (p(s + h, vol) - 2 * p(s, vol) + p(s - h, vol)) / h**2, rel=1e-4
    )
    assert float(bs_vega(s, k, tau, vol, r, q, call)) == pytest.approx((p(s, vol + hv) - p(s, vol - hv)) / (2 * hv) / 100, rel=1e-6)


def test_expiry_is_the_payoff_with_zero_gamma_and_vega():
    spot = torch.tensor([9.0, 10.0, 11.0], dtype=f64)
    call = bs_greeks(spot, 10.0, 0.0, 0.3)
    put = bs_greeks(spot, 10.0, 0.0, 0.3, call=False)
    torch.testing.assert_close(call.price, torch.tensor([0.0, 0.0, 1.0], dtype=f64))
    torch.testing.assert_close(put.price, torch.tensor([1.0, 0.0, 0.0], dtype=f64))
    torch.testing.assert_close(call.delta, torch.tensor([0.0, 0.0, 1.0], dtype=f64))
    torch.testing.assert_close(put.delta, torch.tensor([-1.0, 0.0, 0.0], dtype=f64))
    assert torch.all(call.gamma == 0) and torch.all(call.vega == 0)


def test_broadcasting_dtype_and_float32():
    g = bs_greeks(torch.full((3, 1), 10.0), torch.tensor([9.0, 10.0, 11.0]), torch.tensor([0.1, 0.2, 0.3]), 0.3)
    assert g.price.shape == (3, 3) and g.price.dtype == torch.float32
    ref = bs_greeks(torch.full((3, 1), 10.0, dtype=f64), torch.tensor([9.0, 10.0, 11.0], dtype=f64), torch.tensor([0.1, 0.2, 0.3], dtype=f64), 0.3)
    torch.testing.assert_close(g.price, ref.price.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call", [True, False])
def test_live_and_expired_fast_paths_agree_with_bs_greeks(call):
    gen = torch.Generator().manual_seed(1)
    spot = 5 + 10 * torch.rand(40, 1, generator=gen, dtype=f64)
    strike = 5 + 10 * torch.rand(40, 3, generator=gen, dtype=f64)
    tau = torch.tensor([0.01, 0.2, 1.5], dtype=f64)
    full = bs_greeks(spot, strike, tau, 0.3, r=0.02, q=0.01, call=call)
    for a, b in zip(live_greeks_unchecked(spot, strike, tau, torch.tensor(0.3, dtype=f64), 0.02, 0.01, call), full, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)
    at_expiry = bs_greeks(spot, strike, 0.0, 0.3, call=call)
    for a, b in zip(expired_greeks(spot.expand(40, 3), strike, call), at_expiry, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fn", [bs_greeks, bs_price, bs_delta, bs_gamma, bs_vega])
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((10.0, 10.0, 0.1, 0.0), "vol must be > 0"),
        ((10.0, 10.0, 0.1, -0.2), "vol must be > 0"),
        ((10.0, 10.0, -1 / 250, 0.3), "tau must be >= 0"),
        ((0.0, 10.0, 0.1, 0.3), "spot must be > 0"),
        ((10.0, -1.0, 0.1, 0.3), "strike must be > 0"),
        ((10.0, 10.0, 0.1, float("nan")), "vol must be > 0"),
    ],
)
def test_out_of_domain_inputs_raise_config_error_naming_the_argument(fn, args, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        fn(*args)
    assert fn.__name__ in str(err.value)  # the place


def test_domain_check_counts_bad_elements_and_accepts_the_boundary():
    vol = torch.tensor([0.2, -0.1, 0.3, 0.0], dtype=f64)
    with pytest.raises(ConfigError, match=r"vol must be > 0, got -0.1 \(2 of 4 values\)"):
        bs_greeks(10.0, 10.0, 0.1, vol)
    # tau = 0 is allowed (expired options are worth their payoff).
    assert float(bs_price(11.0, 10.0, 0.0, 0.3)) == 1.0


def test_rate_and_dividend_against_a_scipy_closed_form_and_hull():
    from scipy.stats import norm

    # Hull, Options, Futures and Other Derivatives, Example 17.1 (index option): S=930, K=900, r=8%, q=3%,
    # sigma=20%, T=2 months -> c = 51.83.
    assert float(bs_price(930.0, 900.0, 2 / 12, 0.2, r=0.08, q=0.03)) == pytest.approx(51.83, abs=5e-3)
    r, q = 0.03, 0.012
    for s, k, tau, vol in [(10.0, 11.0, 60 / 250, 0.3), (10.0, 9.0, 20 / 250, 0.45), (9.7, 10.0, 1.3, 0.18)]:
        d1 = (math.log(s / k) + (r - q + vol * vol / 2) * tau) / (vol * math.sqrt(tau))
        d2 = d1 - vol * math.sqrt(tau)
        call = s * math.exp(-q * tau) * norm.cdf(d1) - k * math.exp(-r * tau) * norm.cdf(d2)
        put = k * math.exp(-r * tau) * norm.cdf(-d2) - s * math.exp(-q * tau) * norm.cdf(-d1)
        gamma = math.exp(-q * tau) * norm.pdf(d1) / (s * vol * math.sqrt(tau))
        vega = s * math.exp(-q * tau) * norm.pdf(d1) * math.sqrt(tau) / 100
        for is_call, price, delta in [(True, call, math.exp(-q * tau) * norm.cdf(d1)), (False, put, -math.exp(-q * tau) * norm.cdf(-d1))]:
            g = bs_greeks(s, k, tau, vol, r, q, call=is_call)
            assert float(g.price) == pytest.approx(price, rel=1e-12)
            assert float(g.delta) == pytest.approx(delta, rel=1e-12)
            assert float(g.gamma) == pytest.approx(gamma, rel=1e-12)
            assert float(g.vega) == pytest.approx(vega, rel=1e-12)
