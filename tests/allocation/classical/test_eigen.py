"""Eigen portfolios against NumPy's eigen-decomposition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradfolio.allocation.classical import EigenPortfolio
from gradfolio.errors import ConfigError, DataError


@pytest.mark.parametrize("k", [0, 1, 5])
def test_eigen_portfolio_is_normalized_principal_component(windows, k: int) -> None:
    X, frames = windows(252)
    w = EigenPortfolio(k=k)(X)
    for b, f in enumerate(frames):
        cov = np.cov(f.to_numpy().T)
        vals, vecs = np.linalg.eigh(cov)
        v = vecs[:, -1 - k]
        np.testing.assert_allclose(w[b].numpy(), v / v.sum(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(w[b].numpy(), -v / -v.sum(), rtol=1e-8, atol=1e-10)  # sign-free
        np.testing.assert_allclose(cov @ w[b].numpy(), vals[-1 - k] * w[b].numpy(), atol=1e-10)
    torch.testing.assert_close(w.sum(-1), torch.ones(4, dtype=X.dtype))
    if k == 0:  # the market mode of positively correlated stocks is long-only
        assert bool((w > 0).all())
    else:
        assert bool((w < 0).any())


def test_eigen_errors() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, dtype=torch.float64, generator=g)
    X = torch.stack([x, -x], dim=-1)[None, None]  # first component (1, -1) / sqrt(2)
    with pytest.raises(DataError, match="zero net exposure"):
        EigenPortfolio(k=0)(X)
    with pytest.raises(ConfigError, match="only 2 assets"):
        EigenPortfolio(k=2)(X)
    with pytest.raises(ConfigError, match="k=-1"):
        EigenPortfolio(k=-1)
