"""Minimum CVaR, minimum drawdown, maximum Calmar and maximum Sortino against skfolio's MeanRisk."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pypfopt import EfficientCVaR
from skfolio import RiskMeasure
from skfolio.optimization import MeanRisk, ObjectiveFunction

from gradfolio import risk
from gradfolio.allocation.classical import (
    EqualWeight,
    MaximumCalmar,
    MaximumSortino,
    MinimumCVaR,
    MinimumDrawdown,
)
from gradfolio.errors import ConfigError, InfeasibleError

RATIO = ObjectiveFunction.MAXIMIZE_RATIO
# skfolio's default Clarabel tolerances (1e-8) leave ~1e-4 weight errors on flat ratio optima
TIGHT = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
CASES = {
    "min_cvar": (MinimumCVaR(), dict(risk_measure=RiskMeasure.CVAR)),
    "min_cvar_90": (MinimumCVaR(beta=0.9), dict(risk_measure=RiskMeasure.CVAR, cvar_beta=0.9)),
    "min_drawdown": (MinimumDrawdown(), dict(risk_measure=RiskMeasure.MAX_DRAWDOWN)),
    "max_calmar": (MaximumCalmar(), dict(risk_measure=RiskMeasure.MAX_DRAWDOWN, objective_function=RATIO)),
    "max_sortino_mean": (
        MaximumSortino(target=None),
        dict(risk_measure=RiskMeasure.SEMI_DEVIATION, objective_function=RATIO),
    ),
    "max_sortino_zero": (
        MaximumSortino(target=0.0),
        dict(risk_measure=RiskMeasure.SEMI_DEVIATION, objective_function=RATIO, min_acceptable_return=0.0),
    ),
    "max_sortino_rf": (
        MaximumSortino(target=0.0, risk_free=2e-4),
        dict(
            risk_measure=RiskMeasure.SEMI_DEVIATION,
            objective_function=RATIO,
            min_acceptable_return=0.0,
            risk_free_rate=2e-4,
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_skfolio(windows, case: str) -> None:
    model, options = CASES[case]
    X, frames = windows(252, ends=(2000, 6000, 8312))
    w = model(X)
    assert w.shape == (3, 20)
    for b, f in enumerate(frames):
        ref = MeanRisk(**options, solver_params=TIGHT).fit(f).weights_
        np.testing.assert_allclose(w[b].numpy(), ref, atol=1e-4)
        assert bool((w[b] >= 0).all()) and float(w[b].sum()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("beta", [0.95, 0.9])
def test_min_cvar_matches_pypfopt(windows, beta: float) -> None:
    # EfficientCVaR.min_cvar is the same Rockafellar-Uryasev LP: min a + sum(u) / (L (1 - beta)),
    # u >= 0, u >= -R w - a, sum w = 1, 0 <= w <= 1 (the upper bound is implied)
    X, frames = windows(252, ends=(2000, 6000, 8312))
    w = MinimumCVaR(beta=beta)(X)
    for b, f in enumerate(frames):
        ppo = EfficientCVaR(None, f, beta=beta, solver="CLARABEL", solver_options=TIGHT).min_cvar()
        ref = np.array([ppo[i] for i in range(f.shape[1])])  # keyed by column position (no expected returns)
        np.testing.assert_allclose(w[b].numpy(), ref, atol=1e-6)  # measured: below 4e-9
        assert np.abs(ref - 1 / 20).max() > 1e-2  # far from 1/N: the comparison can fail


def test_optimal_values_beat_equal_weight(windows) -> None:
    X, _ = windows(252)
    R = X[:, 0]
    ew = risk.portfolio_returns(EqualWeight()(X), R)

    def port(model):
        return risk.portfolio_returns(model(X), R)

    assert bool((risk.cvar(port(MinimumCVaR())) <= risk.cvar(ew) + 1e-12).all())
    dd_opt = risk.max_drawdown(port(MinimumDrawdown()), compounded=False)
    assert bool((dd_opt <= risk.max_drawdown(ew, compounded=False) + 1e-12).all())
    sortino_opt = risk.sortino_ratio(port(MaximumSortino()), periods_per_year=1)
    assert bool((sortino_opt >= risk.sortino_ratio(ew, periods_per_year=1) - 1e-12).all())


def test_batched_equals_one_by_one(windows) -> None:
    X, _ = windows(120)
    model = MaximumCalmar()
    batched = model(X)
    for b in range(X.shape[0]):
        torch.testing.assert_close(model(X[b : b + 1])[0], batched[b], rtol=0, atol=1e-12)


def test_float32_input_gives_float32_weights(windows) -> None:
    X, _ = windows(120)
    w = MinimumCVaR()(X.float())
    assert w.dtype == torch.float32
    torch.testing.assert_close(w.double(), MinimumCVaR()(X), rtol=0, atol=1e-3)


def test_errors() -> None:
    X = -torch.rand(2, 1, 40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) / 100
    X[0, 0, 0, 0] = 1.0  # batch element 0 has a positive mean for asset 0; element 1 has none
    MinimumCVaR()(X)  # minimum-risk problems exist whatever the means
    for model in (MaximumSortino(), MaximumCalmar()):
        with pytest.raises(InfeasibleError, match=r"risk_free=0.0 in batch element 1, so") as info:
            model(X)
        assert info.value.rows == [1]  # checked for every window before any solve
    with pytest.raises(ConfigError, match="beta=1.5"):
        MinimumCVaR(beta=1.5)


# Black-Litterman views (per period) on the 20 S&P 500 stocks: two absolute, two relative,
# Idzorek confidences, market-implied prior from asymmetric caps.
BL_PARAMS = dict(
    P=[[0.0] * 3 + [1.0] + [0.0] * 5 + [-1.0] + [0.0] * 10, [0.7] + [0.0] * 6 + [0.3, -1.0] + [0.0] * 11],
    q=[4e-4, -1.5e-4],
    absolute={2: 1.2e-3, 11: 6e-4},
    prior="market",
    market_caps=[float(1 + (7 * i) % 11) for i in range(20)],
    risk_aversion=2.5,
    omega="idzorek",
    confidences=[0.6, 0.3, 0.8, 0.45],
)


def _cvx_ratio(R: np.ndarray, mu: np.ndarray, risk: str, rf: float) -> np.ndarray:
    """Homogenized max (mu'w - rf) / risk(w), long-only and fully invested, in cvxpy + Clarabel."""
    cp = pytest.importorskip("cvxpy")
    L, N = R.shape
    y = cp.Variable(N, nonneg=True)
    cons = [(mu - rf) @ y == 1]
    if risk == "drawdown":
        cum = cp.cumsum(R @ y)
        peak = cp.Variable(L)
        cons += [peak >= cum, peak[1:] >= peak[:-1], peak >= 0]
        objective = cp.max(peak - cum)
    else:  # semi-deviation below 0
        objective = cp.sum_squares(cp.pos(-(R @ y)))
    cp.Problem(cp.Minimize(objective), cons).solve(solver="CLARABEL", **TIGHT)
    return y.value / y.value.sum()


@pytest.mark.parametrize("cls, risk", [(MaximumCalmar, "drawdown"), (MaximumSortino, "semi_deviation")])
def test_black_litterman_mean_matches_cvxpy(windows, cls, risk: str) -> None:
    """mean="black_litterman": the ratio with the posterior mean equals cvxpy with it plugged in."""
    from gradfolio.allocation.classical import BlackLitterman

    X, frames = windows(252, ends=(4500, 8312))
    rf = 1e-5
    w = cls(risk_free=rf, mean="black_litterman", mean_params=BL_PARAMS)(X).numpy()
    w_sample = cls(risk_free=rf)(X).numpy()
    mu = BlackLitterman(**BL_PARAMS)(X[:, 0]).numpy()
    for b, f in enumerate(frames):
        R = f.to_numpy()
        assert not np.allclose(mu[b], R.mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(w[b], _cvx_ratio(R, mu[b], risk, rf), atol=1e-6)
    assert np.abs(w - w_sample).max() > 1e-2  # the hook is used


@pytest.mark.parametrize("cls", [MaximumCalmar, MaximumSortino])
def test_callable_mean_is_used(windows, cls) -> None:
    """A constant mean favouring asset 5 (asymmetric constants) tilts the weights towards it."""
    X, frames = windows(252, ends=(4500, 8312))
    base = torch.linspace(1e-4, 3e-4, 20, dtype=torch.float64)

    def tilted(R: torch.Tensor) -> torch.Tensor:
        mu = base.clone()
        mu[5] = 2e-3
        return mu.expand(R.shape[0], -1)

    def flat(R: torch.Tensor) -> torch.Tensor:
        return base.expand(R.shape[0], -1)

    w_tilted, w_flat = cls(mean=tilted)(X).numpy(), cls(mean=flat)(X).numpy()
    assert (w_tilted[:, 5] > w_flat[:, 5] + 0.05).all()
    for b, f in enumerate(frames):
        risk = "drawdown" if cls is MaximumCalmar else "semi_deviation"
        np.testing.assert_allclose(w_tilted[b], _cvx_ratio(f.to_numpy(), tilted(X)[b].numpy(), risk, 0.0), atol=1e-6)
    with pytest.raises(ConfigError, match="mean_params"):
        cls(mean=flat, mean_params={"tau": 0.1})
    with pytest.raises(ConfigError, match="mean='nope'"):
        cls(mean="nope")
