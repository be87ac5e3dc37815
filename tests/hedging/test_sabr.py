"""SABR simulation (eqs. 50-52) and Hagan implied volatility (eqs. 53-56)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradfolio.errors import ConfigError
from gradfolio.hedging.config import MarketConfig
from gradfolio.hedging.sabr import hagan_implied_vol, simulate_sabr

f64 = torch.float64
ALPHA0 = MarketConfig().alpha0  # 0.3 * sqrt(10): a 30% initial lognormal vol at s0 = 10, beta = 0.5


def hagan_reference(f: float, k: float, t: float, alpha: float, beta: float, rho: float, nu: float) -> float:
    """Hagan, Kumar, Lesniewski, Woodward (2002), eq. (2.17a), written out independently in plain floats."""
    fk = f * k
    lfk = math.log(f / k)
    denom = fk ** ((1 - beta) / 2) * (1 + (1 - beta) ** 2 / 24 * lfk**2 + (1 - beta) ** 4 / 1920 * lfk**4)
    z = nu / alpha * fk ** ((1 - beta) / 2) * lfk
    xz = math.log((math.sqrt(1 - 2 * rho * z + z * z) + z - rho) / (1 - rho))
    z_over_x = 1.0 if z == 0 else z / xz
    corr = 1 + (
        (1 - beta) ** 2 / 24 * alpha**2 / fk ** (1 - beta)
        + rho * beta * nu * alpha / (4 * fk ** ((1 - beta) / 2))
        + (2 - 3 * rho**2) / 24 * nu**2
    ) * t
    return alpha / denom * z_over_x * corr


@pytest.mark.parametrize(("strike", "expected"), [(0.0398, 0.16), (0.0598, 0.15755519), (0.0198, 0.2373848)])
def test_hagan_matches_published_jquantlib_values(strike, expected):
    # JQuantLib test suite, org.jquantlib.testsuite.termstructures.volatilities.SabrTest.testAgainstKnownValues
    # (tolerance 1e-6): F=0.0398, T=5, alpha=0.0305473, beta=0.5, nu=0.34, rho=-0.11.
    vol = hagan_implied_vol(0.0398, strike, 5.0, 0.0305473, beta=0.5, rho=-0.11, nu=0.34)
    assert float(vol) == pytest.approx(expected, abs=1e-6)


@settings(max_examples=80, deadline=None)
@given(
    f=st.floats(5.0, 15.0), moneyness=st.floats(0.7, 1.4), t=st.floats(0.0, 2.0), alpha=st.floats(0.05, 3.0),
    beta=st.floats(0.0, 1.0), rho=st.floats(-0.95, 0.95), nu=st.floats(0.05, 1.5),
)
def test_hagan_matches_independent_formula(f, moneyness, t, alpha, beta, rho, nu):
    k = f * moneyness
    got = float(hagan_implied_vol(f, k, t, alpha, beta, rho, nu))
    assert got == pytest.approx(hagan_reference(f, k, t, alpha, beta, rho, nu), rel=1e-9)


def test_hagan_atm_branch_and_continuity():
    f, t, alpha, beta, rho, nu = 10.0, 0.12, 0.95, 0.5, 0.2, 0.3
    atm = float(hagan_implied_vol(f, f, t, alpha, beta, rho, nu))
    closed = alpha / f ** (1 - beta) * (
        1 + t * ((1 - beta) ** 2 * alpha**2 / (24 * f ** (2 - 2 * beta)) + rho * beta * alpha * nu / (4 * f ** (1 - beta)) + nu**2 * (2 - 3 * rho**2) / 24)
    )
    assert atm == pytest.approx(closed, rel=1e-14)
    near = hagan_implied_vol(f, torch.tensor([f * (1 - 1e-7), f * (1 + 1e-7)], dtype=f64), t, alpha, beta, rho, nu)
    torch.testing.assert_close(near, torch.full((2,), atm, dtype=f64), rtol=1e-6, atol=0)


def test_hagan_limits_lognormal_without_volvol():
    # beta = 1, nu = 0: the lognormal (Black-Scholes) model, so the implied vol is alpha at every strike.
    strikes = torch.linspace(6.0, 14.0, 9, dtype=f64)
    torch.testing.assert_close(hagan_implied_vol(10.0, strikes, 0.5, 0.3, 1.0, 0.2, 0.0), torch.full((9,), 0.3, dtype=f64))


def test_hagan_is_differentiable_at_the_money():
    alpha = torch.tensor(0.95, dtype=f64, requires_grad=True)
    vol = hagan_implied_vol(10.0, torch.tensor([10.0, 10.5], dtype=f64), 0.1, alpha, 0.5, 0.2, 0.3)
    (grad,) = torch.autograd.grad(vol.sum(), alpha)
    assert torch.isfinite(grad)


def test_paths_shapes_start_and_determinism():
    a = simulate_sabr(100, 30, alpha0=ALPHA0, generator=7, dtype=f64)
    b = simulate_sabr(100, 30, alpha0=ALPHA0, generator=7, dtype=f64)
    c = simulate_sabr(100, 30, alpha0=ALPHA0, generator=8, dtype=f64)
    assert a.spot.shape == a.vol.shape == (100, 31)
    assert torch.all(a.spot[:, 0] == 10.0) and torch.allclose(a.vol[:, 0], torch.full((100,), 0.3 * math.sqrt(10), dtype=f64))
    assert torch.equal(a.spot, b.spot) and torch.equal(a.vol, b.vol)
    assert not torch.equal(a.spot, c.spot)
    assert simulate_sabr(10, 5, alpha0=ALPHA0, generator=1).spot.dtype == torch.float32


def test_alpha0_is_required_and_is_hagans_alpha():
    with pytest.raises(TypeError, match="alpha0"):
        simulate_sabr(10, 5, generator=0)  # type: ignore[call-arg]
    # nu = 0: the vol path stays at alpha0 and the first log-return has std alpha0 s0^(beta-1) sqrt(dt).
    n, dt = 200_000, 1 / 250
    p = simulate_sabr(n, 1, alpha0=ALPHA0, nu=0.0, generator=2, dtype=f64)
    assert torch.all(p.vol == ALPHA0)
    r = torch.log(p.spot[:, 1] / 10.0)
    assert float(r.std()) == pytest.approx(0.3 * math.sqrt(dt), rel=4 / math.sqrt(2 * n))


def test_martingale_moments():
    n, steps, dt = 200_000, 30, 1 / 250
    alpha0, beta, rho, nu = 0.3 * math.sqrt(10), 0.5, 0.2, 0.6
    p = simulate_sabr(n, steps, alpha0=alpha0, beta=beta, rho=rho, nu=nu, generator=3, dtype=f64)
    spot_T, vol_T = p.spot[:, -1], p.vol[:, -1]
    # E[P_T] = P_0 (mu = 0) and E[sigma_T] = sigma_0, within 4 standard errors.
    assert abs(float(spot_T.mean()) - 10.0) < 4 * float(spot_T.std()) / math.sqrt(n)
    assert abs(float(vol_T.mean()) - alpha0) < 4 * float(vol_T.std()) / math.sqrt(n)
    # log sigma_T ~ N(log sigma0 - nu^2 T / 2, nu^2 T): check mean and variance (4 standard errors).
    lv = torch.log(vol_T / alpha0)
    var = nu**2 * steps * dt
    assert abs(float(lv.mean()) + var / 2) < 4 * math.sqrt(var / n)
    assert abs(float(lv.var()) - var) < 4 * var * math.sqrt(2 / n)
    # Correlation of daily log-price and log-vol shocks is rho for beta = 1 (eqs. 50-52).
    g = simulate_sabr(n, 1, alpha0=0.3, beta=1.0, rho=rho, nu=nu, generator=4, dtype=f64)
    corr = np.corrcoef(torch.log(g.spot[:, 1]).numpy(), torch.log(g.vol[:, 1]).numpy())[0, 1]
    assert corr == pytest.approx(rho, abs=4 / math.sqrt(n))


def test_drift_and_gbm_limit():
    n, steps, dt, mu = 200_000, 20, 1 / 250, 0.5
    p = simulate_sabr(n, steps, alpha0=0.3, beta=1.0, nu=0.0, mu=mu, generator=5, dtype=f64)
    expected = 10.0 * math.exp(mu * steps * dt)
    assert abs(float(p.spot[:, -1].mean()) - expected) < 4 * float(p.spot[:, -1].std()) / math.sqrt(n)
    # nu = 0, beta = 1 is GBM: daily log returns have std sigma sqrt(dt) and constant vol.
    r = torch.diff(torch.log(p.spot), dim=1)
    assert float(r.std()) == pytest.approx(0.3 * math.sqrt(dt), rel=4 * math.sqrt(1 / (2 * r.numel())) + 1e-12)
    assert torch.all(p.vol == 0.3)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"alpha0": -0.1}, "alpha0"),
        ({"alpha0": 0.0}, "alpha0"),
        ({"alpha0": float("nan")}, "alpha0"),
        ({"rho": 1.0}, "rho"),
        ({"rho": -1.2}, "rho"),
        ({"beta": 1.5}, "beta"),
        ({"nu": -0.3}, "nu"),
        ({"s0": -10.0}, "s0"),
        ({"dt": 0.0}, "dt"),
    ],
)
def test_bad_parameters_raise_config_error(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        simulate_sabr(10, 5, generator=0, **{"alpha0": ALPHA0, **kwargs})


def test_hagan_rejects_bad_parameters():
    with pytest.raises(ConfigError, match="rho"):
        hagan_implied_vol(10.0, 10.0, 0.1, 0.3, 0.5, 1.0, 0.3)
    with pytest.raises(ConfigError, match="nu"):
        hagan_implied_vol(10.0, 10.0, 0.1, 0.3, 0.5, 0.2, -0.3)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((0.0, 10.0, 0.1, 0.9), "forward must be > 0"),
        ((-10.0, 10.0, 0.1, 0.9), "forward must be > 0"),
        ((10.0, 0.0, 0.1, 0.9), "strike must be > 0"),
        ((10.0, 10.0, -0.1, 0.9), "tau must be >= 0"),
        ((10.0, 10.0, 0.1, 0.0), "alpha must be > 0"),
        ((10.0, 10.0, 0.1, -0.9), "alpha must be > 0"),
    ],
)
def test_hagan_rejects_inputs_outside_its_domain(args, needle):
    # Unchecked, these give NaN (log of a negative ratio) or a negative "vol" (alpha < 0).
    with pytest.raises(ConfigError, match=needle) as err:
        hagan_implied_vol(*args, 0.5, 0.2, 0.3)
    assert "hagan_implied_vol" in str(err.value)
    strikes = torch.tensor([9.0, 10.0, -1.0], dtype=f64)
    with pytest.raises(ConfigError, match=r"strike must be > 0, got -1.0 \(1 of 3 values\)"):
        hagan_implied_vol(10.0, strikes, 0.1, 0.9, 0.5, 0.2, 0.3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_simulate_sabr_on_cuda_float64():
    n = 200_000
    p = simulate_sabr(n, 30, alpha0=ALPHA0, nu=0.6, generator=3, device="cuda", dtype=f64)
    assert p.spot.device.type == p.vol.device.type == "cuda" and p.spot.dtype == f64
    again = simulate_sabr(n, 30, alpha0=ALPHA0, nu=0.6, generator=3, device="cuda", dtype=f64)
    assert torch.equal(p.spot, again.spot)
    spot_T, vol_T = p.spot[:, -1].cpu(), p.vol[:, -1].cpu()
    # Martingales: E[P_T] = P_0, E[sigma_T] = alpha0 (4 standard errors).
    assert abs(float(spot_T.mean()) - 10.0) < 4 * float(spot_T.std()) / math.sqrt(n)
    assert abs(float(vol_T.mean()) - ALPHA0) < 4 * float(vol_T.std()) / math.sqrt(n)
