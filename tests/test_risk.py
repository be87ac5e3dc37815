"""gradfolio.risk against closed forms, skfolio, finite differences, and itself across backends."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skfolio.measures as skm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradfolio import ConfigError, risk

returns_arrays = arrays(
    np.float64, st.integers(8, 300), elements=st.floats(-0.2, 0.2, allow_nan=False, allow_subnormal=False)
)
levels = st.sampled_from([0.9, 0.95, 0.975, 0.99, 0.5, 0.8])


def test_closed_forms_constant_return() -> None:
    r = np.full(252, 0.001)
    assert risk.annualized_return(r) == pytest.approx(1.001**252 - 1, rel=1e-12)
    assert risk.annualized_mean(r) == pytest.approx(0.252, rel=1e-12)
    assert risk.annualized_volatility(r) == pytest.approx(0.0, abs=1e-15)
    assert risk.max_drawdown(r) == 0.0


def test_closed_forms_small_series() -> None:
    r = np.array([0.1, -0.5, 0.2, 0.05])
    # wealth 1.1, 0.55, 0.66, 0.693 -> peak 1.1 -> max drawdown 1 - 0.55/1.1 = 0.5
    assert risk.max_drawdown(r) == pytest.approx(0.5)
    assert risk.max_drawdown(r, compounded=False) == pytest.approx(0.5)  # 1.1 -> 0.6 arithmetic
    mean, sd = r.mean(), r.std(ddof=1)
    assert risk.sharpe_ratio(r, periods_per_year=1) == pytest.approx(mean / sd)
    assert risk.sharpe_ratio(r) == pytest.approx(mean / sd * math.sqrt(252))
    dd = math.sqrt(0.25 / 4)  # only -0.5 is below the 0 target
    assert risk.downside_deviation(r) == pytest.approx(dd)
    assert risk.sortino_ratio(r, periods_per_year=1) == pytest.approx(mean / dd)
    cagr = (1.1 * 0.5 * 1.2 * 1.05) ** (252 / 4) - 1
    assert risk.annualized_return(r) == pytest.approx(cagr)
    assert risk.calmar_ratio(r) == pytest.approx(cagr / 0.5)
    assert risk.mean_std(r, risk_aversion=1.645) == pytest.approx(mean - 1.645 * sd)
    # losses sorted: -0.2, -0.1, -0.05, 0.5. At 75%, k = 1 tail observation: CVaR is the worst
    # loss and VaR = inf{l : P(L <= l) >= 0.75} = -0.05 (the (k+1)-th largest loss)
    assert risk.value_at_risk(r, 0.75) == pytest.approx(-0.05)
    assert risk.cvar(r, 0.75) == pytest.approx(0.5)
    # at 50%: k = 2 -> CVaR = mean of the two worst losses; VaR = third largest loss
    assert risk.cvar(r, 0.5) == pytest.approx((0.5 - 0.05) / 2)
    assert risk.value_at_risk(r, 0.5) == pytest.approx(-0.1)


def test_cvar_fractional_tail() -> None:
    r = np.array([-0.3, -0.1, 0.0, 0.1, 0.2])
    # level 0.7: k = 1.5 -> (0.3 + 0.5 * 0.1) / 1.5
    assert risk.cvar(r, 0.7) == pytest.approx((0.3 + 0.05) / 1.5)


@settings(max_examples=60, deadline=None)
@given(returns_arrays, levels)
def test_tail_measures_match_skfolio(r: np.ndarray, level: float) -> None:
    assert risk.value_at_risk(r, level) == pytest.approx(skm.value_at_risk(r, beta=level), abs=1e-12)
    assert risk.cvar(r, level) == pytest.approx(skm.cvar(r, beta=level), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(returns_arrays)
def test_moments_and_drawdowns_match_skfolio(r: np.ndarray) -> None:
    assert risk.mean_return(r) == pytest.approx(skm.mean(r), abs=1e-14)
    assert risk.annualized_volatility(r, periods_per_year=1) == pytest.approx(skm.standard_deviation(r), abs=1e-12)
    for compounded in (True, False):
        sk_drawdowns = skm.get_drawdowns(r, compounded=compounded)
        assert risk.max_drawdown(r, compounded=compounded) == pytest.approx(skm.max_drawdown(sk_drawdowns), abs=1e-12)
        np.testing.assert_allclose(-risk.drawdowns(r, compounded=compounded), sk_drawdowns, atol=1e-12)


def test_bundled_data_sharpe_matches_reference() -> None:
    from gradfolio.data import load_prices, to_returns

    rets = to_returns(load_prices("sp500"))
    x = rets.to_numpy()
    ref = x.mean(axis=0) / x.std(axis=0, ddof=1) * math.sqrt(252)  # empyrical's sharpe_ratio
    np.testing.assert_allclose(risk.sharpe_ratio(rets), ref, rtol=1e-12)  # DataFrame: one value per asset
    np.testing.assert_allclose(risk.sharpe_ratio(x.T), ref, rtol=1e-12)


@pytest.mark.parametrize(
    "measure",
    [risk.sharpe_ratio, risk.sortino_ratio, risk.annualized_return, risk.annualized_volatility, risk.max_drawdown,
     risk.calmar_ratio, lambda r: risk.cvar(r, 0.9), lambda r: risk.value_at_risk(r, 0.9), risk.mean_std],
)
def test_torch_batched_matches_numpy_rows(measure) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.normal(0.0005, 0.02, size=(3, 4, 50))
    batched = measure(torch.tensor(x))
    assert batched.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert float(batched[i, j]) == pytest.approx(measure(x[i, j]), rel=1e-12)
    as_float32 = measure(torch.tensor(x, dtype=torch.float32))
    assert as_float32.dtype == torch.float32


@pytest.mark.parametrize(
    "measure",
    [risk.sharpe_ratio, risk.sortino_ratio, risk.calmar_ratio, risk.max_drawdown, lambda r: risk.cvar(r, 0.9),
     risk.mean_std, risk.annualized_return],
)
def test_gradients_match_finite_differences(measure) -> None:  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 30, generator=gen, dtype=torch.float64) * 0.02).requires_grad_(True)
    assert torch.autograd.gradcheck(measure, (x,), eps=1e-7, atol=1e-6)


def test_portfolio_returns_and_turnover() -> None:
    w = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    R = torch.tensor([[[0.1, -0.1], [0.2, 0.0]], [[0.1, -0.1], [0.2, 0.0]]])
    torch.testing.assert_close(risk.portfolio_returns(w, R), torch.tensor([[0.0, 0.1], [0.1, 0.2]]))
    assert risk.turnover(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == pytest.approx(1.0)
    torch.testing.assert_close(risk.turnover(w[0], w), torch.tensor([0.0, 1.0]))


def test_summary_keys_and_values() -> None:
    r = np.random.default_rng(3).normal(0.0005, 0.01, 500)
    out = risk.summary(r)
    assert out["sharpe_ratio"] == pytest.approx(risk.sharpe_ratio(r))
    assert out["cvar_95"] == pytest.approx(risk.cvar(r, 0.95))
    assert set(out) >= {"annualized_return", "annualized_volatility", "max_drawdown", "calmar_ratio", "var_95"}


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1])
def test_bad_level_is_a_config_error(level: float) -> None:
    with pytest.raises(ConfigError, match="level"):
        risk.cvar(np.ones(10), level)
