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
