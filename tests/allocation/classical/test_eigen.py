"""Eigen portfolios against NumPy's eigen-decomposition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradfolio.allocation.classical import EigenPortfolio
from gradfolio.allocation.classical.eigen import normalize_component
from gradfolio.errors import ConfigError, DataError


@pytest.mark.parametrize("k", [0, 1, 5])
def test_eigen_portfolio_is_normalized_principal_component(windows, k: int) -> None:
    X, frames = windows(252)
    w = EigenPortfolio(k=k, normalize="net")(X)
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
        EigenPortfolio(k=0, normalize="net")(X)
    with pytest.raises(ConfigError, match="only 2 assets"):
        EigenPortfolio(k=2)(X)
    with pytest.raises(ConfigError, match="k=-1"):
        EigenPortfolio(k=-1)


# A 3x3 covariance with known orthonormal eigenvectors (columns) and eigenvalues 4e-4 > 2e-4 > 1e-4.
V = torch.tensor([[1.0, 2.0, 2.0], [2.0, 1.0, -2.0], [2.0, -2.0, 1.0]], dtype=torch.float64).T / 3.0
LAMBDA = torch.tensor([4e-4, 2e-4, 1e-4], dtype=torch.float64)
S = V @ torch.diag(LAMBDA) @ V.T


def _fixed_covariance(R: torch.Tensor) -> torch.Tensor:
    return S.expand(R.shape[0], 3, 3)


X3 = torch.zeros(2, 1, 10, 3, dtype=torch.float64)  # the covariance is fixed: the returns are unused


@pytest.mark.parametrize(
    ("k", "net", "gross"),
    [
        (0, [1 / 5, 2 / 5, 2 / 5], [1 / 5, 2 / 5, 2 / 5]),  # long-only: gross == net
        (1, [2.0, 1.0, -2.0], [2 / 5, 1 / 5, -2 / 5]),  # v = (2, 1, -2)/3, sum v = 1/3
        (2, [2.0, -2.0, 1.0], [2 / 5, -2 / 5, 1 / 5]),
    ],
)
def test_normalizations_closed_form(k: int, net: list[float], gross: list[float]) -> None:
    expect = {"net": torch.tensor(net, dtype=torch.float64), "gross": torch.tensor(gross, dtype=torch.float64)}
    for mode in ("net", "gross"):
        w = EigenPortfolio(k=k, covariance=_fixed_covariance, normalize=mode)(X3)
        torch.testing.assert_close(w, expect[mode].expand(2, 3), rtol=0, atol=1e-14)
    # volatility: s v sigma* / sqrt(A lambda), annualized volatility sqrt(A w'Sw) = sigma*
    w = EigenPortfolio(k=k, covariance=_fixed_covariance, normalize="volatility", target_volatility=0.15, periods_per_year=250)(X3)
    v = V[:, k] * torch.sign(V[:, k].sum())
    torch.testing.assert_close(w[0], v * 0.15 / (250 * LAMBDA[k]).sqrt(), rtol=0, atol=1e-14)
    torch.testing.assert_close((250 * w[0] @ S @ w[0]).sqrt(), torch.tensor(0.15, dtype=torch.float64), rtol=0, atol=1e-14)


@pytest.mark.parametrize("mode", ["net", "gross", "volatility"])
def test_sign_convention(mode: str) -> None:
    v = V.T[[1, 2, 0]]  # (3, 3): three eigenvectors as rows
    lam = LAMBDA[[1, 2, 0]]
    torch.testing.assert_close(normalize_component(v, lam, mode), normalize_component(-v, lam, mode), rtol=0, atol=0)
    if mode != "net":
        assert bool((normalize_component(v, lam, mode).sum(-1) > 0).all())  # net exposure made positive
    # zero net exposure: the sign of the largest entry decides, and v, -v still agree
    zero = torch.tensor([[0.5, -0.8, 0.3]], dtype=torch.float64)
    if mode == "gross":
        torch.testing.assert_close(normalize_component(zero, lam[:1], mode), -zero / 1.6, rtol=0, atol=1e-15)
        torch.testing.assert_close(normalize_component(-zero, lam[:1], mode), -zero / 1.6, rtol=0, atol=1e-15)


def test_gross_default_handles_zero_net_exposure() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, dtype=torch.float64, generator=g)
    X = torch.stack([x, -x], dim=-1)[None, None]  # first component (1, -1) / sqrt(2)
    torch.testing.assert_close(EigenPortfolio()(X)[0].abs(), torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ConfigError, match="normalize='levered'"):
        EigenPortfolio(normalize="levered")
    with pytest.raises(ConfigError, match="target_volatility"):
        EigenPortfolio(normalize="volatility", target_volatility=0.0)


def test_net_is_the_former_normalization_and_long_only_market_mode_is_unchanged(windows) -> None:
    X, frames = windows(252)
    net = EigenPortfolio(k=0, normalize="net")(X)
    for b, f in enumerate(frames):
        v = np.linalg.eigh(np.cov(f.to_numpy().T))[1][:, -1]
        np.testing.assert_allclose(net[b].numpy(), v / v.sum(), rtol=1e-8, atol=1e-10)
    assert bool((net > 0).all())
    torch.testing.assert_close(EigenPortfolio(k=0)(X), net, rtol=0, atol=1e-15)  # gross == net when long-only


def test_demo_walk_forward_has_no_turnover_blowup(sp500_returns) -> None:
    """The demo's setting (lookback 60, weekly rebalancing, 2013-2022, 10 bps).

    With ``"net"`` the market mode's net exposure nears zero on some 60-day windows and the
    turnover of one rebalance reaches 94.7 (200.4 on the grid starting 2013-01-01). With ``"gross"`` every target has
    ``sum |w| = 1``, so a rebalance trades at most ``1 + sum |w_before|`` (triangle inequality),
    where the drifted gross exposure ``sum |w_before|`` is 1 up to five days of price moves:
    measured max turnover 1.995, asserted <= 2.05 (and the exact bound per rebalance).
    """
    from gradfolio.backtest import ProportionalCost, walk_forward

    result = walk_forward(
        {"net": EigenPortfolio(normalize="net"), "gross": EigenPortfolio()},
        sp500_returns, 60, rebalance_every=5, cost=ProportionalCost.from_bps(10), start="2013-02-04", dtype=torch.float64,
    )
    assert result.turnover["net"].max() > 20.0  # the blow-up this normalization had (measured 94.7)
    gross = result.turnover["gross"]
    assert gross.max() <= 2.05
    np.testing.assert_allclose(result.weights["gross"].abs().sum(axis=1), 1.0, rtol=0, atol=1e-12)
    bound = 1.0 + result.weights_before["gross"].abs().sum(axis=1)
    assert bool((gross <= bound + 1e-12).all())
    metrics = result.metrics()  # annual turnover measured 8.1 (gross) vs 30.5 (net)
    assert metrics.loc["gross", "annual_turnover"] < 0.5 * metrics.loc["net", "annual_turnover"]
