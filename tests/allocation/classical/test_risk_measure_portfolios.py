"""Minimum CDaR, MAD, worst realization, semi-variance and EVaR against skfolio's MeanRisk on the S&P 500
and Fama-French industry windows; the minimized risk against gradfolio.risk."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from skfolio import RiskMeasure
from skfolio.optimization import MeanRisk

from gradfolio import risk
from gradfolio.allocation.classical import (
    EqualWeight,
    MinimumCDaR,
    MinimumEVaR,
    MinimumMeanAbsoluteDeviation,
    MinimumSemiVariance,
    MinimumWorstRealization,
)
from gradfolio.errors import ConfigError

TIGHT = dict(solver_params=dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10), scale_objective=1e4)

CASES = [
    (MinimumCDaR(beta=0.9), dict(risk_measure=RiskMeasure.CDAR, cdar_beta=0.9), lambda r: risk.cdar(r, 0.9)),
    (MinimumMeanAbsoluteDeviation(), dict(risk_measure=RiskMeasure.MEAN_ABSOLUTE_DEVIATION), risk.mean_absolute_deviation),
    (MinimumWorstRealization(), dict(risk_measure=RiskMeasure.WORST_REALIZATION), risk.worst_realization),
    (MinimumSemiVariance(), dict(risk_measure=RiskMeasure.SEMI_VARIANCE), risk.semi_variance),
]


@pytest.mark.parametrize(("model", "peer", "measure"), CASES, ids=lambda c: type(c).__name__ if hasattr(c, "allocate") else "")
def test_matches_skfolio_and_minimizes_the_measure(both_windows, model, peer, measure) -> None:
    X, frames = both_windows
    w = model(X)
    ew = EqualWeight()(X)
    for b, f in enumerate(frames):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = MeanRisk(**peer, **TIGHT).fit(f.to_numpy()).weights_
        np.testing.assert_allclose(w[b].numpy(), ref, atol=2e-6)
        R = X[b, 0]
        ours = float(measure(R @ w[b]))
        assert ours <= float(measure(R @ ew[b])) + 1e-15
        assert ours <= float(measure(R @ torch.as_tensor(ref))) * (1 + 1e-6) + 1e-15
    torch.testing.assert_close(w.sum(-1), torch.ones(len(frames), dtype=w.dtype))


def test_cdar_beta_is_checked_and_matters(windows) -> None:
    X, _ = windows(252)
    assert float((MinimumCDaR(beta=0.5)(X) - MinimumCDaR(beta=0.95)(X)).abs().max()) > 1e-3
    with pytest.raises(ConfigError, match="beta=1.0"):
        MinimumCDaR(beta=1.0)


def _cvxpy_omega(R: np.ndarray, tau: float) -> np.ndarray:
    import cvxpy as cp

    L, N = R.shape
    y = cp.Variable(N, nonneg=True)
    v = cp.Variable(L, nonneg=True)
    prob = cp.Problem(cp.Minimize(cp.sum(v) / L), [v >= -(R - tau) @ y, (R.mean(0) - tau) @ y == 1])
    prob.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return y.value / y.value.sum()


@pytest.mark.parametrize("tau", [0.0, 2e-4])
def test_max_omega_is_the_best_omega(both_windows, tau: float) -> None:
    from gradfolio.allocation.classical import MaximumOmega

    X, frames = both_windows
    w = MaximumOmega(threshold=tau)(X)
    gen = np.random.default_rng(0)
    for b in range(len(frames)):
        R = X[b, 0].numpy()
        np.testing.assert_allclose(w[b].numpy(), _cvxpy_omega(R, tau), atol=1e-6)
        best = risk.omega_ratio(R @ w[b].numpy(), target=tau)
        assert best >= max(risk.omega_ratio(R[:, i], target=tau) for i in range(R.shape[1])) - 1e-12
        others = gen.dirichlet(np.ones(R.shape[1]), size=500) @ R.T
        assert best >= risk.omega_ratio(others, target=tau).max() - 1e-12


def test_max_omega_infeasible_windows_are_named(windows) -> None:
    from gradfolio.allocation.classical import MaximumOmega
    from gradfolio.errors import InfeasibleError

    X, _ = windows(60)
    with pytest.raises(InfeasibleError) as err:
        MaximumOmega(threshold=1.0)(X)
    assert err.value.rows == [0, 1, 2, 3]


#: skfolio's EVaR problem at Clarabel's tightest tolerances (its defaults stop ~2e-5 away in the weights;
#: EVaR is flat there: 1e-6 in the weights moves it by ~1e-12)
EVAR_TIGHT = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, max_iter=400)


@pytest.mark.parametrize("beta", [0.9, 0.97])
def test_min_evar_matches_skfolio_and_beats_random_portfolios(both_windows, beta: float) -> None:
    X, frames = both_windows
    w = MinimumEVaR(beta=beta)(X)
    gen = np.random.default_rng(3)
    for b, f in enumerate(frames):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = MeanRisk(risk_measure=RiskMeasure.EVAR, evar_beta=beta, solver_params=EVAR_TIGHT).fit(f.to_numpy()).weights_
        np.testing.assert_allclose(w[b].numpy(), ref, atol=1e-5)
        R = X[b, 0]
        ours = float(risk.evar(R @ w[b], beta))
        assert ours <= float(risk.evar(R @ torch.as_tensor(ref), beta)) + 1e-10
        others = torch.as_tensor(gen.dirichlet(np.ones(R.shape[1]), size=200)) @ R.T  # (200, L)
        assert ours <= float(risk.evar(others, beta).min())
    torch.testing.assert_close(w.sum(-1), torch.ones(len(frames), dtype=w.dtype))
    assert float(w.min()) >= 0.0


def test_evar_beta_is_checked_and_matters(windows) -> None:
    X, _ = windows(252)
    assert float((MinimumEVaR(beta=0.5)(X) - MinimumEVaR(beta=0.95)(X)).abs().max()) > 1e-3
    with pytest.raises(ConfigError, match="beta=0.0"):
        MinimumEVaR(beta=0.0)


def test_min_evar_is_the_minimax_portfolio_when_the_tail_is_one_day(windows) -> None:
    """``L (1 - beta) <= 1``: EVaR is the worst loss (z -> 0), so the optimum is the minimax portfolio."""
    X, _ = windows(60, ends=(2000, 6000))
    torch.testing.assert_close(MinimumEVaR(beta=0.99)(X), MinimumWorstRealization()(X), atol=1e-8, rtol=0)


def test_max_omega_black_litterman_mean_matches_cvxpy(windows) -> None:
    """mean="black_litterman" (absolute + relative views, Idzorek confidences): the homogenized
    Omega LP with the posterior mean in ``mu'y - tau`` equals cvxpy + Clarabel with it plugged in."""
    cp = pytest.importorskip("cvxpy")
    from gradfolio.allocation.classical import BlackLitterman, MaximumOmega

    params = dict(P=[[1.0] + [0.0] * 5 + [-1.0] + [0.0] * 13], q=[3e-4], absolute={8: 1e-3, 15: -2e-4},
                  omega="idzorek", confidences=[0.7, 0.4, 0.55])
    X, frames = windows(252, ends=(4500, 8312))
    tau = 1e-4
    w = MaximumOmega(threshold=tau, mean="black_litterman", mean_params=params)(X).numpy()
    w_sample = MaximumOmega(threshold=tau)(X).numpy()
    mu = BlackLitterman(**params)(X[:, 0]).numpy()
    for b, f in enumerate(frames):
        R = f.to_numpy()
        y = cp.Variable(20, nonneg=True)
        cp.Problem(cp.Minimize(cp.sum(cp.pos(-(R - tau) @ y)) / len(R)), [(mu[b] - tau) @ y == 1]).solve(
            solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10
        )
        np.testing.assert_allclose(w[b], y.value / y.value.sum(), atol=1e-6)
    assert np.abs(w - w_sample).max() > 1e-2  # the hook is used
