"""Covariance estimators against NumPy, scikit-learn and PyPortfolioOpt on the bundled data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pypfopt import risk_models
from sklearn.covariance import ledoit_wolf

from gradfolio.allocation.classical import (
    COVARIANCES,
    exponential_covariance,
    ledoit_wolf_covariance,
    ledoit_wolf_shrinkage,
    resolve_covariance,
    sample_covariance,
)
from gradfolio.errors import ConfigError


def test_sample_matches_numpy(windows) -> None:
    X, frames = windows(252)
    cov = sample_covariance(X[:, 0])
    for b, f in enumerate(frames):
        np.testing.assert_allclose(cov[b].numpy(), np.cov(f.to_numpy().T), rtol=1e-12, atol=1e-18)
    biased = sample_covariance(X[:, 0], ddof=0)
    np.testing.assert_allclose(biased.numpy(), cov.numpy() * 251 / 252, rtol=1e-12)


@pytest.mark.parametrize("lookback", [30, 252])
def test_ledoit_wolf_matches_sklearn_and_pypfopt(windows, lookback: int) -> None:
    X, frames = windows(lookback)
    cov = ledoit_wolf_covariance(X[:, 0])
    shrink = ledoit_wolf_shrinkage(X[:, 0])
    for b, f in enumerate(frames):
        ref, ref_shrink = ledoit_wolf(f.to_numpy())
        assert float(shrink[b]) == pytest.approx(ref_shrink, rel=1e-10)
        assert 0.0 < ref_shrink < 1.0  # a real shrinkage, not a degenerate end point
        np.testing.assert_allclose(cov[b].numpy(), ref, rtol=1e-10, atol=1e-18)
        ppo = risk_models.CovarianceShrinkage(f, returns_data=True).ledoit_wolf() / 252
        np.testing.assert_allclose(cov[b].numpy(), ppo.to_numpy(), rtol=1e-10, atol=1e-18)


@pytest.mark.parametrize("span", [20, 180])
def test_exponential_matches_pypfopt(windows, span: int) -> None:
    X, frames = windows(252)
    cov = exponential_covariance(X[:, 0], span=span)
    for b, f in enumerate(frames):
        ref = risk_models.exp_cov(f, returns_data=True, span=span) / 252
        np.testing.assert_allclose(cov[b].numpy(), ref.to_numpy(), rtol=1e-9, atol=1e-18)


def test_exponential_large_span_tends_to_biased_sample(windows) -> None:
    X, _ = windows(252)
    cov = exponential_covariance(X[:, 0], span=1e9)
    np.testing.assert_allclose(cov.numpy(), sample_covariance(X[:, 0], ddof=0).numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", ["sample", "ledoit_wolf", "exponential"])
def test_batched_equals_one_by_one_and_float32(windows, name: str) -> None:
    X, _ = windows(100)
    est = resolve_covariance(name)
    batched = est(X[:, 0])
    for b in range(X.shape[0]):
        torch.testing.assert_close(est(X[b : b + 1, 0])[0], batched[b], rtol=1e-12, atol=0)
    single = est(X[:, 0].float())
    assert single.dtype == torch.float32
    torch.testing.assert_close(single.double(), batched, rtol=1e-4, atol=1e-9)


def test_resolve_options_and_errors(windows) -> None:
    X, _ = windows(100)
    est = resolve_covariance("exponential", span=30)
    torch.testing.assert_close(est(X[:, 0]), exponential_covariance(X[:, 0], span=30))
    assert resolve_covariance(sample_covariance) is sample_covariance
    with pytest.raises(ConfigError, match="covariance='bogus'"):
        resolve_covariance("bogus")
    with pytest.raises(ConfigError, match="bind them"):
        resolve_covariance(sample_covariance, span=3)
    with pytest.raises(ConfigError, match="span=0.5"):
        exponential_covariance(X[:, 0], span=0.5)


def test_covariances_registry_binds_validated_options(windows) -> None:
    X, _ = windows(100)
    assert COVARIANCES.names() == ["sample", "ledoit_wolf", "exponential", "oas", "ewma", "denoised", "detoned", "gerber"]
    assert resolve_covariance("ledoit_wolf") is ledoit_wolf_covariance  # no option: the function itself
    torch.testing.assert_close(resolve_covariance("sample", ddof=0)(X[:, 0]), sample_covariance(X[:, 0], ddof=0),
                               rtol=0, atol=0)
    assert torch.equal(resolve_covariance("exponential", span="45")(X[:, 0]), exponential_covariance(X[:, 0], 45.0))
    with pytest.raises(ConfigError, match=r"^benchmark_params.hrp.covariance.span: Input should be a valid number"):
        resolve_covariance("exponential", where="benchmark_params.hrp.covariance", span={"days": 60})
    with pytest.raises(ConfigError, match=r"^covariance.spam: Extra inputs are not permitted"):
        resolve_covariance("exponential", spam=60)
    with pytest.raises(ConfigError, match=r"^covariance.ddof: Input should be a valid integer"):
        resolve_covariance("sample", ddof="one")
    with pytest.raises(ConfigError, match=r"^covariance.span: Extra inputs"):
        resolve_covariance("ledoit_wolf", span=3)
