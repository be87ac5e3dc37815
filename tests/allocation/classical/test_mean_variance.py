"""Minimum variance and maximum Sharpe against skfolio, PyPortfolioOpt and cvxpy + Clarabel."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch
from pypfopt import EfficientFrontier, expected_returns, risk_models
from skfolio import RiskMeasure
from skfolio.moments import LedoitWolf
from skfolio.optimization import MeanRisk, ObjectiveFunction
from skfolio.prior import EmpiricalPrior

from gradfolio.allocation.classical import MaximumSharpe, MinimumVariance
from gradfolio.errors import InfeasibleError

TIGHT = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
# daily variances are ~1e-4: the peers need their objective scaled to resolve weights to 1e-6
SCALED = dict(solver_params=TIGHT, scale_objective=1e4)


def cvxpy_min_variance(cov: np.ndarray) -> np.ndarray:
    w = cp.Variable(cov.shape[0], nonneg=True)
    cov = cov / np.diag(cov).mean()
    cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(cov))), [cp.sum(w) == 1]).solve(solver="CLARABEL", **TIGHT)
    return w.value


def cvxpy_max_sharpe(mu: np.ndarray, cov: np.ndarray, rf: float = 0.0) -> np.ndarray:
    y = cp.Variable(cov.shape[0], nonneg=True)
    cov, excess = cov / np.diag(cov).mean(), mu - rf
    problem = cp.Problem(cp.Minimize(cp.quad_form(y, cp.psd_wrap(cov))), [excess / excess.max() @ y == 1])
    problem.solve(solver="CLARABEL", **TIGHT)
    return y.value / y.value.sum()


@pytest.mark.parametrize("lookback", [60, 252])
def test_min_variance_matches_peers(windows, lookback: int) -> None:
    X, frames = windows(lookback)
    w = MinimumVariance()(X)
    for b, f in enumerate(frames):
        np.testing.assert_allclose(w[b].numpy(), cvxpy_min_variance(np.cov(f.to_numpy().T)), atol=1e-5)
        sk = MeanRisk(risk_measure=RiskMeasure.VARIANCE, **SCALED).fit(f).weights_
        np.testing.assert_allclose(w[b].numpy(), sk, atol=1e-4)
        ppo = EfficientFrontier(None, risk_models.sample_cov(f, returns_data=True)).min_volatility()
        np.testing.assert_allclose(w[b].numpy(), np.array([ppo[a] for a in f.columns]), atol=1e-4)


def test_min_variance_ledoit_wolf_matches_peers(windows) -> None:
    X, frames = windows(60)
    w = MinimumVariance(covariance="ledoit_wolf")(X)
    for b, f in enumerate(frames):
        S = risk_models.CovarianceShrinkage(f, returns_data=True).ledoit_wolf()
        ppo = EfficientFrontier(None, S).min_volatility()
        np.testing.assert_allclose(w[b].numpy(), np.array([ppo[a] for a in f.columns]), atol=1e-4)
        prior = EmpiricalPrior(covariance_estimator=LedoitWolf())
        sk = MeanRisk(prior_estimator=prior, **SCALED).fit(f).weights_
        np.testing.assert_allclose(w[b].numpy(), sk, atol=1e-4)


@pytest.mark.parametrize("risk_free", [0.0, 2e-4])
def test_max_sharpe_matches_peers(windows, risk_free: float) -> None:
    X, frames = windows(252, ends=(2000, 6000, 8312))
    w = MaximumSharpe(risk_free=risk_free)(X)
    for b, f in enumerate(frames):
        R = f.to_numpy()
        np.testing.assert_allclose(w[b].numpy(), cvxpy_max_sharpe(R.mean(0), np.cov(R.T), risk_free), atol=1e-5)
        sk = MeanRisk(
            risk_measure=RiskMeasure.VARIANCE,
            objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
            risk_free_rate=risk_free,
            **SCALED,
        ).fit(f).weights_
        np.testing.assert_allclose(w[b].numpy(), sk, atol=1e-4)
        mu = expected_returns.mean_historical_return(f, returns_data=True, compounding=False)
        ef = EfficientFrontier(mu, risk_models.sample_cov(f, returns_data=True))
        ppo = ef.max_sharpe(risk_free_rate=risk_free * 252)
        np.testing.assert_allclose(w[b].numpy(), np.array([ppo[a] for a in f.columns]), atol=1e-4)


def test_max_sharpe_infeasible_names_the_windows() -> None:
    X = -torch.rand(4, 1, 40, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) / 100
    X[0, 0, :, 1] += 0.02
    X[2, 0, :, 3] += 0.02
    with pytest.raises(InfeasibleError, match="batch elements 1, 3, so the maximum-ratio") as info:
        MaximumSharpe()(X)
    assert info.value.rows == [1, 3]  # what a backtest needs to allocate the other windows in one call
    with pytest.raises(InfeasibleError, match="batch element 1,") as info:
        MaximumSharpe()(X[:3])
    assert info.value.rows == [1]


def test_min_variance_exponential_matches_pypfopt(windows) -> None:
    X, frames = windows(252)
    w = MinimumVariance(covariance="exponential")(X)
    for b, f in enumerate(frames):
        S = risk_models.exp_cov(f, returns_data=True, span=180)
        ppo = EfficientFrontier(None, S, solver="CLARABEL", solver_options=TIGHT).min_volatility()
        # measured: below 2e-6
        np.testing.assert_allclose(w[b].numpy(), np.array([ppo[a] for a in f.columns]), atol=1e-5)
        # a real difference from the sample estimate: the test can tell the estimators apart
        assert np.abs(w[b].numpy() - MinimumVariance()(X[b : b + 1])[0].numpy()).max() > 1e-2


def test_batched_equals_one_by_one_and_float32(windows) -> None:
    X, _ = windows(120, ends=(2000, 6000, 8312))
    for model in (MinimumVariance(), MaximumSharpe()):
        batched = model(X)
        assert bool((batched >= -1e-8).all())
        torch.testing.assert_close(batched.sum(-1), torch.ones(3, dtype=X.dtype), rtol=0, atol=1e-8)
        for b in range(X.shape[0]):
            torch.testing.assert_close(model(X[b : b + 1])[0], batched[b], rtol=0, atol=1e-6)
        single = model(X.float())
        assert single.dtype == torch.float32
        torch.testing.assert_close(single.double(), batched, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model", [MinimumVariance(), MaximumSharpe()], ids=["min_variance", "max_sharpe"])
def test_gradient_matches_finite_differences(model) -> None:
    g = torch.Generator().manual_seed(3)
    X = (0.01 * torch.randn(2, 1, 40, 5, dtype=torch.float64, generator=g) + 0.002).requires_grad_(True)
    c = torch.randn(5, dtype=torch.float64, generator=g)
    (model(X) @ c).sum().backward()
    eps = 1e-6
    for idx in [(0, 0, 3, 1), (1, 0, 17, 4), (0, 0, 39, 0)]:
        Xp, Xm = X.detach().clone(), X.detach().clone()
        Xp[idx] += eps
        Xm[idx] -= eps
        fd = ((model(Xp) @ c).sum() - (model(Xm) @ c).sum()) / (2 * eps)
        assert float(X.grad[idx]) == pytest.approx(float(fd), rel=1e-3, abs=1e-6)


def test_max_diversification_matches_skfolio_and_cvxpy(both_windows) -> None:
    from skfolio.optimization import MaximumDiversification as SkMaxDiv

    from gradfolio.allocation.classical import MaximumDiversification

    X, frames = both_windows
    w = MaximumDiversification()(X)
    for b, f in enumerate(frames):
        R = f.to_numpy()
        cov = np.cov(R.T)
        sd = np.sqrt(np.diag(cov))
        # the peer's objective scaled by the inverse mean variance (1e4 for daily data, as SCALED)
        peer = SkMaxDiv(solver_params=TIGHT, scale_objective=1.0 / np.diag(cov).mean())
        np.testing.assert_allclose(w[b].numpy(), peer.fit(R).weights_, atol=2e-6)
        # the ratio is maximal: no long-only portfolio of the peer's QP form does better
        ratio = float(sd @ w[b].numpy() / np.sqrt(w[b].numpy() @ cov @ w[b].numpy()))
        assert ratio >= float(sd @ cvxpy_max_sharpe(sd, cov) / np.sqrt(cvxpy_max_sharpe(sd, cov) @ cov @ cvxpy_max_sharpe(sd, cov))) - 1e-9
        assert ratio > 1.0
    ewma = MaximumDiversification(covariance="ewma")(X)
    assert float((ewma - w).abs().max()) > 1e-3
