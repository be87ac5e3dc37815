"""gradfolio.risk against closed forms, skfolio, finite differences, and itself across backends."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import skfolio.measures as skm
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradfolio import ConfigError, DataError, risk

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
    # risk_free 0.01 per period shifts the mean only; target 0.1: shortfalls -0.5 - 0.1 and -0.05 (0.1 is on target)
    assert risk.sharpe_ratio(r, risk_free=0.01, periods_per_year=1) == pytest.approx((mean - 0.01) / sd)
    dd_target = math.sqrt((0.6**2 + 0.05**2) / 4)
    assert risk.downside_deviation(r, target=0.1) == pytest.approx(dd_target)
    assert risk.sortino_ratio(r, target=0.1, periods_per_year=4) == pytest.approx((mean - 0.1) / dd_target * 2)
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


def cagr_ref(r: np.ndarray, ppy: float) -> float:
    """CAGR from skfolio's compounded wealth: W_T^(ppy / T) - 1 (empyrical's ``annual_return``)."""
    wealth = skm.get_cumulative_returns(r, compounded=True)[-1]
    return wealth ** (ppy / len(r)) - 1


def sortino_ref(r: np.ndarray, target: float, ppy: float) -> float:
    """Sortino & Price (1994), as empyrical's ``sortino_ratio``: the mean excess return over the target
    divided by the downside deviation sqrt(sum(min(R - target, 0)^2) / T), annualized by sqrt(ppy)."""
    excess = r - target
    downside = math.sqrt(float(np.sum(np.minimum(excess, 0.0) ** 2)) / len(r))
    return float(np.mean(excess)) / downside * math.sqrt(ppy)


@settings(max_examples=60, deadline=None)
@given(returns_arrays, st.floats(-0.05, 0.05), st.sampled_from([1, 12, 252]))
def test_sortino_cagr_calmar_match_references(r: np.ndarray, target: float, ppy: int) -> None:
    assume(np.any(r < target - 1e-6) and np.any(r < -1e-6))  # a downside and a drawdown: finite ratios
    assert risk.downside_deviation(r, target) == pytest.approx(
        skm.semi_deviation(r, min_acceptable_return=target, biased=True), rel=1e-12, abs=1e-15
    )
    assert risk.sortino_ratio(r, target, ppy) == pytest.approx(sortino_ref(r, target, ppy), rel=1e-9, abs=1e-12)
    assert risk.annualized_return(r, ppy) == pytest.approx(cagr_ref(r, ppy), rel=1e-9, abs=1e-12)
    # empyrical's calmar_ratio: CAGR over the compounded maximum drawdown (skfolio's drawdowns, positive)
    max_dd = skm.max_drawdown(skm.get_drawdowns(r, compounded=True))
    assert risk.calmar_ratio(r, ppy) == pytest.approx(cagr_ref(r, ppy) / max_dd, rel=1e-9, abs=1e-12)


def test_dataframe_is_read_as_time_by_assets() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(0.0, 0.02, size=(40, 3)), columns=["a", "b", "c"])
    for measure in (risk.sortino_ratio, risk.calmar_ratio, risk.annualized_return, risk.max_drawdown):
        np.testing.assert_allclose(measure(frame), [measure(frame[c].to_numpy()) for c in frame], rtol=1e-12)
    dd = risk.drawdowns(frame)  # keeps the time axis: (time, assets) like the input
    assert dd.shape == (40, 3)
    np.testing.assert_allclose(dd[:, 1], risk.drawdowns(frame["b"]), rtol=1e-12)


@pytest.mark.parametrize(
    "measure",
    [risk.sharpe_ratio, risk.sortino_ratio, risk.annualized_return, risk.annualized_volatility, risk.max_drawdown,
     risk.calmar_ratio, lambda r: risk.cvar(r, 0.9), lambda r: risk.value_at_risk(r, 0.9), risk.mean_std,
     risk.mean_return, risk.annualized_mean, risk.downside_deviation],
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
    torch.testing.assert_close(as_float32, batched.float(), rtol=1e-4, atol=1e-5)


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
    frame = pd.DataFrame(R[0].numpy(), columns=["x", "y"])  # (time, assets)
    np.testing.assert_allclose(risk.portfolio_returns(w[0].numpy(), frame), [0.0, 0.1], atol=1e-7)
    assert risk.turnover(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == pytest.approx(1.0)
    torch.testing.assert_close(risk.turnover(w[0], w), torch.tensor([0.0, 1.0]))
    mixed = risk.turnover(w, np.array([0.0, 1.0]))  # NumPy next to a tensor takes its dtype
    assert isinstance(mixed, torch.Tensor) and mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, torch.tensor([1.0, 2.0]))


def test_turnover_of_weight_dataframes() -> None:
    # A DataFrame of weights is (dates, assets): turnover sums over assets, one value per date
    weights = pd.DataFrame(
        {"a": [0.5, 0.2, 0.2], "b": [0.3, 0.6, 0.3], "c": [0.2, 0.2, 0.5]}, index=pd.bdate_range("2020-01-01", periods=3)
    )
    before, after = weights.iloc[:-1], weights.iloc[1:]
    np.testing.assert_allclose(risk.turnover(before, after), [0.3 + 0.3 + 0.0, 0.0 + 0.3 + 0.3])
    np.testing.assert_allclose(risk.turnover(weights.iloc[0], weights), [0.0, 0.6, 0.6])
    with pytest.raises(ConfigError, match=r"w_prev has assets \['a', 'b', 'c'\] but w_next has \['c', 'b', 'a'\]"):
        risk.turnover(before, after[["c", "b", "a"]])


@pytest.mark.parametrize(
    ("w_prev", "w_next"),
    [(np.ones(3), np.ones(4)), (np.ones((2, 3)), np.ones((5, 3))), (np.float64(1.0), np.ones(2)),
     (torch.ones(2, 3), torch.ones(3, 2))],
)
def test_turnover_shape_mismatch_is_a_config_error(w_prev: object, w_next: object) -> None:
    with pytest.raises(ConfigError, match=r"w_prev has shape .* and w_next .*same number of assets"):
        risk.turnover(w_prev, w_next)


def test_portfolio_returns_shape_mismatch_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"weights have shape \(3,\) and returns \(5, 2\)"):
        risk.portfolio_returns(np.ones(3), np.ones((5, 2)))
    with pytest.raises(ConfigError, match=r"weights have shape \(2,\) and returns \(2,\)"):
        risk.portfolio_returns(np.ones(2), np.ones(2))  # returns need a time axis


HAND = np.array([0.1, -0.5, 0.2, 0.05])  # wealth 1.1, 0.55, 0.66, 0.693; quarterly: ppy = 4, T = 4 is one year


def hand_values(scale: float) -> dict[str, float]:
    """Closed forms of ``summary(scale * HAND, periods_per_year=4, level=0.75)``, worked out by hand."""
    mean = -0.0375 * scale
    sd = math.sqrt(0.296875 / 3) * scale  # squared deviations from the mean sum to 0.296875
    wealth = (1 + 0.1 * scale) * (1 - 0.5 * scale) * (1 + 0.2 * scale) * (1 + 0.05 * scale)
    max_dd = 0.5 * scale  # peak after the first period, trough after the second: 1 - (1 + a)(1 - b) / (1 + a) = b
    return {
        "annualized_return": wealth - 1,  # one year of data: CAGR = total return
        "annualized_volatility": sd * 2,
        "sharpe_ratio": mean / sd * 2,
        "sortino_ratio": mean / math.sqrt((0.5 * scale) ** 2 / 4) * 2,  # only -0.5 * scale is below 0
        "max_drawdown": max_dd,
        "calmar_ratio": (wealth - 1) / max_dd,
        "var_75": -0.05 * scale,  # k = 1 tail return: VaR is the second largest loss (a gain of 0.05)
        "cvar_75": 0.5 * scale,  # the worst loss
    }


def test_summary_known_values() -> None:
    out = risk.summary(HAND, periods_per_year=4, level=0.75)
    assert isinstance(out, dict) and list(out) == list(hand_values(1.0))
    for name, expected in hand_values(1.0).items():
        assert out[name] == pytest.approx(expected, rel=1e-12), name
    assert out["annualized_return"] == pytest.approx(-0.307) and out["max_drawdown"] == pytest.approx(0.5)


def test_summary_of_a_dataframe_is_one_column_per_asset() -> None:
    frame = pd.DataFrame({"full": HAND, "half": HAND / 2}, index=pd.bdate_range("2020-01-01", periods=4))
    table = risk.summary(frame, periods_per_year=4, level=0.75)
    assert isinstance(table, pd.DataFrame) and list(table.columns) == ["full", "half"]
    for column, scale in (("full", 1.0), ("half", 0.5)):
        expected = hand_values(scale)
        assert list(table.index) == list(expected)
        np.testing.assert_allclose(table[column].to_numpy(), list(expected.values()), rtol=1e-12)
    with pytest.raises(ConfigError, match=r"summary takes one series \(T,\) or a DataFrame \(T, assets\), got shape \(2, 4\)"):
        risk.summary(frame.to_numpy().T)


@pytest.mark.parametrize(
    ("measure", "least"),
    [(risk.mean_return, 1), (risk.annualized_return, 1), (risk.sortino_ratio, 1), (risk.max_drawdown, 1),
     (risk.drawdowns, 1), (risk.calmar_ratio, 1), (risk.value_at_risk, 1), (risk.cvar, 1),
     (risk.annualized_volatility, 2), (risk.sharpe_ratio, 2), (risk.mean_std, 2)],
)
def test_too_short_input_is_a_data_error(measure, least: int) -> None:  # type: ignore[no-untyped-def]
    too_short = (np.array([]), np.full(least - 1, 0.01), torch.zeros(3, least - 1), pd.DataFrame({"a": [0.01] * (least - 1)}))
    for short in too_short:
        with pytest.raises(DataError, match=rf"returns: {measure.__name__} needs at least {least} period"):
            measure(short)
    assert np.isfinite(measure(np.array([-0.01, 0.02][:least]))).all()  # exactly `least` periods work


@pytest.mark.parametrize("ppy", [0, -252, float("nan"), float("inf"), True])
@pytest.mark.parametrize(
    "measure",
    [risk.annualized_mean, risk.annualized_return, risk.annualized_volatility, risk.calmar_ratio,
     lambda r, ppy: risk.sharpe_ratio(r, periods_per_year=ppy), lambda r, ppy: risk.sortino_ratio(r, periods_per_year=ppy),
     lambda r, ppy: risk.summary(r, periods_per_year=ppy)],
)
def test_bad_periods_per_year_is_a_config_error(measure, ppy: float) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"periods_per_year=.* must be a number > 0"):
        measure(HAND, ppy)


def test_non_numeric_input_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"returns: cannot read the values as numbers"):
        risk.sharpe_ratio(["0.1", "x"])


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1])
def test_bad_level_is_a_config_error(level: float) -> None:
    with pytest.raises(ConfigError, match="level"):
        risk.cvar(np.ones(10), level)


# --- CDaR, Omega, EVaR, worst realization, semi-variance, mean absolute deviation ---------------


@settings(max_examples=60, deadline=None)
@given(returns_arrays, levels)
def test_new_measures_match_skfolio(r: np.ndarray, level: float) -> None:
    assume(np.ptp(r) > 1e-6)
    assert risk.cdar(r, level) == pytest.approx(skm.cdar(skm.get_drawdowns(r), level), rel=1e-9, abs=1e-15)
    assert risk.cdar(r, level, compounded=True) == pytest.approx(
        skm.cdar(skm.get_drawdowns(r, compounded=True), level), rel=1e-9, abs=1e-15
    )
    assert risk.evar(r, level) == pytest.approx(skm.evar(r, level), rel=1e-9, abs=1e-12)
    assert risk.worst_realization(r) == skm.worst_realization(r)
    assert risk.semi_variance(r) == pytest.approx(skm.semi_variance(r), rel=1e-10, abs=1e-18)
    assert risk.semi_variance(r, target=0.01, biased=True) == pytest.approx(
        skm.semi_variance(r, min_acceptable_return=0.01, biased=True), rel=1e-10, abs=1e-18
    )
    assert risk.mean_absolute_deviation(r) == pytest.approx(skm.mean_absolute_deviation(r), rel=1e-10, abs=1e-18)
    assert risk.mean_absolute_deviation(r, target=-0.01) == pytest.approx(
        skm.mean_absolute_deviation(r, min_acceptable_return=-0.01), rel=1e-10, abs=1e-18
    )
    lpm = skm.first_lower_partial_moment(r, min_acceptable_return=0.002)
    assume(lpm > 1e-9)
    assert risk.omega_ratio(r, target=0.002) == pytest.approx(1 + (r.mean() - 0.002) / lpm, rel=1e-9)


def test_new_measures_closed_forms() -> None:
    r = np.array([0.1, -0.5, 0.2, 0.05])
    # gains above 0: 0.35, losses below: 0.5 -> Omega 0.7; above 0.1: 0.1, below: 0.6 + 0.05
    assert risk.omega_ratio(r) == pytest.approx(0.35 / 0.5)
    assert risk.omega_ratio(r, target=0.1) == pytest.approx(0.1 / 0.65)
    assert risk.worst_realization(r) == pytest.approx(0.5)
    m = r.mean()
    assert risk.mean_absolute_deviation(r) == pytest.approx(np.abs(r - m).mean())
    assert risk.semi_variance(r) == pytest.approx(((m - r).clip(min=0) ** 2).sum() / 3)
    # arithmetic drawdowns 0, 0.5, 0.3, 0.25: the 50% CDaR is the mean of the worst two
    assert risk.cdar(r, 0.5) == pytest.approx((0.5 + 0.3) / 2)
    # EVaR between CVaR and the worst loss; the worst loss once 1 - level <= 1/T
    assert risk.cvar(r, 0.6) < risk.evar(r, 0.6) < 0.5
    assert risk.evar(r, 0.8) == pytest.approx(0.5)
    # of a two-point loss distribution (L = 1 w.p. 1/2, else 0) with level 1/2: inf_z z log(1 + e^(1/z)) = 1
    assert risk.evar(np.array([0.0, -1.0]), 0.5) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(
    "measure",
    [lambda r: risk.cdar(r, 0.9), risk.omega_ratio, lambda r: risk.evar(r, 0.9), risk.worst_realization,
     risk.semi_variance, risk.mean_absolute_deviation],
)
def test_new_measures_batched_and_differentiable(measure) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    x = rng.normal(0.0005, 0.02, size=(3, 4, 50))
    batched = measure(torch.tensor(x))
    assert batched.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert float(batched[i, j]) == pytest.approx(measure(x[i, j]), rel=1e-12)
    torch.testing.assert_close(measure(torch.tensor(x, dtype=torch.float32)), batched.float(), rtol=1e-4, atol=1e-5)
    gen = torch.Generator().manual_seed(1)
    xg = (torch.randn(2, 30, generator=gen, dtype=torch.float64) * 0.02).requires_grad_(True)
    assert torch.autograd.gradcheck(measure, (xg,), eps=1e-7, atol=1e-6)


def test_evar_and_cdar_reject_bad_levels() -> None:
    with pytest.raises(ConfigError, match="level"):
        risk.evar(np.zeros(5) + 0.01, 1.0)
    with pytest.raises(ConfigError, match="level"):
        risk.cdar(np.zeros(5) + 0.01, 0.0)
