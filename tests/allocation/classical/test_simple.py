"""1/N, inverse volatility and random portfolios."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skfolio.optimization import EqualWeighted
from skfolio.optimization import InverseVolatility as SkInverseVolatility

from gradfolio.allocation.classical import (
    EqualWeight,
    InverseVolatility,
    RandomPortfolio,
)
from gradfolio.errors import DataError


def test_equal_weight_matches_skfolio(windows) -> None:
    X, frames = windows(60)
    w = EqualWeight()(X)
    assert w.shape == (4, 20) and w.dtype == X.dtype
    for b, f in enumerate(frames):
        np.testing.assert_allclose(w[b].numpy(), EqualWeighted().fit(f).weights_, atol=1e-15)


@pytest.mark.parametrize("lookback", [60, 252])
def test_inverse_volatility_matches_skfolio(windows, lookback: int) -> None:
    X, frames = windows(lookback)
    w = InverseVolatility()(X)
    for b, f in enumerate(frames):
        ref = SkInverseVolatility().fit(f).weights_
        np.testing.assert_allclose(w[b].numpy(), ref, atol=1e-12)
        sd = f.to_numpy().std(axis=0)
        np.testing.assert_allclose(w[b].numpy(), (1 / sd) / (1 / sd).sum(), atol=1e-12)


def test_inverse_volatility_other_estimator_changes_weights(windows) -> None:
    X, _ = windows(252)
    w_sample = InverseVolatility()(X)
    w_ew = InverseVolatility(covariance="exponential")(X)
    torch.testing.assert_close(w_ew.sum(-1), torch.ones(4, dtype=X.dtype))
    assert (w_ew - w_sample).abs().max() > 1e-3


def test_inverse_volatility_rejects_constant_asset() -> None:
    X = torch.randn(2, 1, 30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) / 100
    X[1, 0, :, 2] = 0.001
    with pytest.raises(DataError, match="asset 2 has zero variance in batch element 1"):
        InverseVolatility()(X)


def test_random_is_seeded_uniform_on_simplex() -> None:
    X = torch.zeros(4000, 1, 5, 4)
    w1 = RandomPortfolio(seed=7)(X)
    w2 = RandomPortfolio(seed=7)(X)
    torch.testing.assert_close(w1, w2, rtol=0, atol=0)
    assert w1.dtype == torch.float32 and w1.shape == (4000, 4)
    assert bool((w1 >= 0).all())
    torch.testing.assert_close(w1.sum(-1), torch.ones(4000), rtol=0, atol=1e-6)
    # Dirichlet(1,1,1,1): each weight ~ Beta(1, 3), mean 1/4, variance 3 / (16 * 5).
    mean, var = w1.double().mean(0), w1.double().var(0)
    se = (3 / 80 / 4000) ** 0.5
    assert bool(((mean - 0.25).abs() < 5 * se).all())
    assert bool(((var - 3 / 80).abs() < 0.1 * 3 / 80).all())
    # a fresh call continues the stream: new weights; another seed: other weights
    rp = RandomPortfolio(seed=7)
    first, second = rp(X[:3]), rp(X[:3])
    assert not torch.equal(first, second)
    assert not torch.equal(RandomPortfolio(seed=8)(X[:3]), first)
    gen = torch.Generator().manual_seed(7)
    torch.testing.assert_close(RandomPortfolio(seed=gen)(X[:3]), first)


def test_inverse_variance_matches_pypfopt_min_volatility_of_the_diagonal(both_windows) -> None:
    from pypfopt import EfficientFrontier

    from gradfolio.allocation.classical import InverseVariance

    X, frames = both_windows
    w = InverseVariance()(X)
    for b, f in enumerate(frames):
        var = f.to_numpy().var(axis=0, ddof=1)
        np.testing.assert_allclose(w[b].numpy(), (1 / var) / (1 / var).sum(), rtol=1e-12)
        ef = EfficientFrontier(None, np.diag(var) * 1e4, weight_bounds=(0, 1))
        ef.min_volatility()
        np.testing.assert_allclose(w[b].numpy(), np.array(list(ef.clean_weights(rounding=None).values())), atol=1e-5)
    lw = InverseVariance(covariance="ledoit_wolf")(X)
    assert float((lw - w).abs().max()) > 1e-4
    torch.testing.assert_close(lw.sum(-1), torch.ones(len(frames), dtype=lw.dtype))
