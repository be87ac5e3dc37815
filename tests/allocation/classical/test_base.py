"""The common interface: input validation, channel and return-kind handling, properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradfolio.allocation.classical import (
    EqualWeight,
    HierarchicalRiskParity,
    InverseVolatility,
    MaximumSortino,
    MinimumCVaR,
    MinimumDrawdown,
    RandomPortfolio,
    RiskParity,
)
from gradfolio.errors import ConfigError, DataError

LONG_ONLY = [
    EqualWeight(),
    InverseVolatility(),
    RandomPortfolio(seed=0),
    RiskParity(),
    HierarchicalRiskParity(),
    HierarchicalRiskParity(linkage="ward", ordering="optimal"),
    MinimumCVaR(),
    MinimumDrawdown(),
]


def test_log_returns_channel_gives_same_weights(windows) -> None:
    X, _ = windows(120)
    noise = torch.randn_like(X)
    X_log = torch.cat([noise, torch.log1p(X)], dim=1)  # returns in channel 1, as log returns
    for model in (InverseVolatility, RiskParity, HierarchicalRiskParity, MinimumCVaR):
        expected = model()(X)
        got = model(returns_channel=1, returns_kind="log")(X_log)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-9)
    # treating the log returns as simple returns is a different (wrong) estimate
    assert (InverseVolatility()(torch.log1p(X)) - InverseVolatility()(X)).abs().max() > 1e-6


def test_input_errors(windows) -> None:
    X, _ = windows(30)
    model = RiskParity()
    with pytest.raises(DataError, match=r"shape \(batch, channels, lookback, assets\)"):
        model(X[0])
    with pytest.raises(ConfigError, match="X has only 1 channel"):
        RiskParity(returns_channel=1)(X)
    with pytest.raises(DataError, match="2 lookback days"):
        model(X[:, :, :1])
    bad = X.clone()
    bad[2, 0, 5, 7] = float("nan")
    with pytest.raises(DataError, match="batch element 2, day 5, asset 7"):
        model(bad)
    with pytest.raises(ConfigError, match="returns_kind='pct'"):
        RiskParity(returns_kind="pct")
    with pytest.raises(ConfigError, match="returns_channel=-1"):
        EqualWeight(returns_channel=-1)


returns_windows = arrays(
    np.float64,
    st.tuples(st.integers(1, 3), st.integers(12, 40), st.integers(2, 6)),
    elements=st.floats(-0.1, 0.1, allow_nan=False, allow_subnormal=False),
)


@settings(max_examples=25, deadline=None)
@given(R=returns_windows)
def test_long_only_budget_property(R: np.ndarray) -> None:
    X = torch.tensor(R)[:, None]
    # tiny idiosyncratic noise keeps every covariance positive definite, as with real prices
    X = X + 1e-3 * torch.randn(X.shape, dtype=X.dtype, generator=torch.Generator().manual_seed(0))
    for model in LONG_ONLY:
        w = model(X)
        assert w.shape == (R.shape[0], R.shape[2])
        assert bool(torch.isfinite(w).all()), type(model).__name__
        assert bool((w >= 0).all()), type(model).__name__
        torch.testing.assert_close(w.sum(-1), torch.ones(R.shape[0], dtype=w.dtype), rtol=0, atol=1e-9)


@settings(max_examples=10, deadline=None)
@given(R=returns_windows, shift=st.floats(1e-3, 5e-2))
def test_ratio_portfolio_property(R: np.ndarray, shift: float) -> None:
    g = torch.Generator().manual_seed(1)
    X = torch.tensor(R)[:, None] + 1e-3 * torch.randn(R.shape[0], 1, *R.shape[1:], dtype=torch.float64, generator=g)
    X[..., 0] += shift - X[..., 0].mean(dim=-1, keepdim=True)  # asset 0 has mean `shift` > 0: the ratio problem exists
    w = MaximumSortino()(X)
    assert bool((w >= 0).all())
    torch.testing.assert_close(w.sum(-1), torch.ones(R.shape[0], dtype=w.dtype), rtol=0, atol=1e-9)
