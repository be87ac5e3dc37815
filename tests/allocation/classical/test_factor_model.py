"""Factor models against skfolio's TimeSeriesFactorModel (skfolio's bundled factors; the
Fama-French industries on MktRF/SMB/HML/Mom) and NumPy's PCA; the factor-form portfolio against
the dense QP."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from skfolio.datasets import load_factors_dataset, load_sp500_dataset
from skfolio.preprocessing import prices_to_returns
from skfolio.prior import LoadingMatrixRegression, TimeSeriesFactorModel
from sklearn.linear_model import LinearRegression

from gradfolio.allocation.classical import MinimumVariance
from gradfolio.allocation.classical.factor_model import (
    FactorMeanVariance,
    observed_factor_model,
    statistical_factor_model,
)
from gradfolio.allocation.classical.frontier import efficient_frontier
from gradfolio.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def skfolio_factors():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X, Y = prices_to_returns(load_sp500_dataset(), load_factors_dataset())
    return X.to_numpy(), Y.to_numpy()


def _check_against_skfolio(R: np.ndarray, F: np.ndarray, ends, T: int) -> None:
    Rw = torch.tensor(np.stack([R[e - T : e] for e in ends]))
    Fw = torch.tensor(np.stack([F[e - T : e] for e in ends]))
    model = observed_factor_model(Rw, Fw)
    assert model.loadings.shape == (len(ends), R.shape[1], F.shape[1])
    for b, e in enumerate(ends):
        ref = TimeSeriesFactorModel(loading_matrix_estimator=LoadingMatrixRegression(linear_regressor=LinearRegression()))
        dist = ref.fit(R[e - T : e], factors=F[e - T : e]).return_distribution_
        np.testing.assert_allclose(model.covariance()[b].numpy(), dist.covariance, rtol=1e-10, atol=1e-12 * np.abs(dist.covariance).max())
        np.testing.assert_allclose(model.mean[b].numpy(), dist.mu, rtol=1e-10, atol=1e-15)


def test_observed_factors_match_skfolio_on_its_factor_dataset(skfolio_factors) -> None:
    R, F = skfolio_factors
    _check_against_skfolio(R, F, (500, 1200, 2263), 252)


def test_observed_factors_match_skfolio_on_fama_french(ff_returns) -> None:
    from linearmodels.datasets import french

    F = french.load()[["MktRF", "SMB", "HML", "Mom"]].to_numpy()
    _check_against_skfolio(ff_returns.to_numpy(), F, (200, 500, 819), 120)


def test_statistical_model_is_the_leading_eigenpairs(both_windows) -> None:
    X, frames = both_windows
    model = statistical_factor_model(X[:, 0], n_factors=3)
    for b, f in enumerate(frames):
        S = np.cov(f.to_numpy().T)
        ev, V = np.linalg.eigh(S)
        top = V[:, -3:] * ev[-3:]
        np.testing.assert_allclose((model.loadings[b] @ model.loadings[b].T).numpy(), top @ V[:, -3:].T, rtol=1e-9, atol=1e-12 * S.max())
        np.testing.assert_allclose(model.covariance()[b].diagonal().numpy(), np.diag(S), rtol=1e-10)
    with pytest.raises(ConfigError, match="n_factors"):
        statistical_factor_model(X[:, 0], n_factors=X.shape[-1])


def test_factor_portfolio_equals_dense_problem(both_windows) -> None:
    X, _ = both_windows
    model = statistical_factor_model(X[:, 0], n_factors=3)
    dense_cov = model.covariance()
    w_min = FactorMeanVariance(n_factors=3)(X)
    torch.testing.assert_close(w_min, MinimumVariance(covariance=lambda R: dense_cov)(X), rtol=0, atol=1e-7)
    w_mv = FactorMeanVariance(n_factors=3, risk_aversion=40.0)(X)
    ref = efficient_frontier(X[:, 0], [40.0], covariance=lambda R: dense_cov).weights[:, 0]
    torch.testing.assert_close(w_mv, ref, rtol=0, atol=1e-7)
    assert float((w_mv - w_min).abs().max()) > 1e-3


def test_factor_portfolio_with_black_litterman_mean_equals_dense_problem(windows) -> None:
    """mean="black_litterman" (absolute + relative views, Idzorek confidences): the factor-form
    portfolio equals the dense mean-variance problem with the posterior mean, and differs from
    the sample-mean one; a constant callable mean favouring asset 7 raises its weight."""
    X, _ = windows(252, ends=(4500, 8312))
    params = dict(P=[[0.0] * 2 + [1.0] + [0.0] * 9 + [-1.0] + [0.0] * 7], q=[2e-4],
                  absolute={7: 9e-4, 16: -3e-4}, omega="idzorek", confidences=[0.5, 0.85, 0.35])
    dense_cov = statistical_factor_model(X[:, 0], n_factors=3).covariance()
    w = FactorMeanVariance(n_factors=3, risk_aversion=40.0, mean="black_litterman", mean_params=params)(X)
    ref = efficient_frontier(X[:, 0], [40.0], covariance=lambda R: dense_cov, mean="black_litterman",
                             mean_params=params).weights[:, 0]
    torch.testing.assert_close(w, ref, rtol=0, atol=1e-7)
    assert float((w - FactorMeanVariance(n_factors=3, risk_aversion=40.0)(X)).abs().max()) > 1e-2
    base = torch.linspace(2e-4, -1e-4, 20, dtype=torch.float64)
    tilted = base.clone()
    tilted[7] = 1.5e-3
    w_flat = FactorMeanVariance(n_factors=3, risk_aversion=40.0, mean=lambda R: base.expand(R.shape[0], -1))(X)
    w_tilt = FactorMeanVariance(n_factors=3, risk_aversion=40.0, mean=lambda R: tilted.expand(R.shape[0], -1))(X)
    assert bool((w_tilt[:, 7] > w_flat[:, 7] + 0.05).all())


def test_errors(windows) -> None:
    X, _ = windows(60)
    with pytest.raises(DataError, match="factors for observed_factor_model"):
        observed_factor_model(X[:, 0], X[:, 0, :50, :3])
    with pytest.raises(ConfigError, match="risk_aversion"):
        FactorMeanVariance(risk_aversion=-1.0)
