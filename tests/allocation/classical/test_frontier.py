"""The batched efficient frontier against skfolio's utility maximization, with its plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skfolio.optimization import MeanRisk, ObjectiveFunction

from gradfolio.allocation.classical import MinimumVariance
from gradfolio.allocation.classical.frontier import efficient_frontier, plot_frontier
from gradfolio.errors import ConfigError, DataError

TIGHT = dict(solver_params=dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10), scale_objective=1e4)


def test_frontier_matches_skfolio_utility(both_windows) -> None:
    X, frames = both_windows
    lams = np.geomspace(0.3, 3e3, 13)
    F = efficient_frontier(X[:, 0], lams)
    B, N = X.shape[0], X.shape[-1]
    assert F.weights.shape == (B, 13, N) and F.mean.shape == (B, 13) and F.volatility.shape == (B, 13)
    for b, f in enumerate(frames):
        for g in (0, 4, 8, 12):
            ref = MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_UTILITY, risk_aversion=lams[g], **TIGHT)
            np.testing.assert_allclose(F.weights[b, g].numpy(), ref.fit(f.to_numpy()).weights_, atol=5e-6)
    # along the frontier: more aversion, less risk and less return
    assert bool((F.volatility.diff(dim=-1) <= 1e-12).all()) and bool((F.mean.diff(dim=-1) <= 1e-12).all())
    mv = MinimumVariance()(X)
    far = efficient_frontier(X[:, 0], [1e7])
    torch.testing.assert_close(far.weights[:, 0], mv, rtol=0, atol=1e-4)


def test_frontier_options_and_gradient(windows) -> None:
    X, _ = windows(120)
    R = X[:2, 0, :, :6]
    base = efficient_frontier(R, [1.0, 50.0])
    lw = efficient_frontier(R, [1.0, 50.0], covariance="ledoit_wolf", mean="james_stein")
    assert float((base.weights - lw.weights).abs().max()) > 1e-3
    single = efficient_frontier(R[0], torch.tensor([50.0]))
    torch.testing.assert_close(single.weights[0, 0], base.weights[0, 1], rtol=0, atol=1e-10)
    # directional finite difference of a weighted sum of the weights
    c = torch.linspace(-1.0, 2.0, 6, dtype=R.dtype)
    direction = torch.randn(R.shape, generator=torch.Generator().manual_seed(3), dtype=R.dtype) * 1e-3

    def loss(z: torch.Tensor) -> torch.Tensor:
        return (efficient_frontier(z, [20.0, 200.0]).weights * c).sum()

    x = R.clone().requires_grad_(True)
    loss(x).backward()
    eps = 1e-4
    fd = (loss(R + eps * direction) - loss(R - eps * direction)) / (2 * eps)
    assert float((x.grad * direction).sum()) == pytest.approx(float(fd), rel=1e-4, abs=1e-9)
    assert abs(float(fd)) > 1e-3


def test_plot_frontier(windows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    X, _ = windows(252)
    F = efficient_frontier(X[:, 0], np.geomspace(1, 1e3, 7))
    ax = plot_frontier(F, window=1, periods_per_year=252, label="2000-2010")
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), F.volatility[1].numpy() * np.sqrt(252))
    np.testing.assert_allclose(line.get_ydata(), F.mean[1].numpy() * 252)
    assert "annualized" in ax.get_xlabel() and ax.get_legend() is not None
    with pytest.raises(ConfigError, match="window=9"):
        plot_frontier(F, window=9)


def test_frontier_errors(windows) -> None:
    X, _ = windows(60)
    with pytest.raises(ConfigError, match="risk_aversions"):
        efficient_frontier(X[:, 0], [1.0, -2.0])
    with pytest.raises(ConfigError, match="risk_aversions"):
        efficient_frontier(X[:, 0], [])
    with pytest.raises(DataError, match="efficient_frontier"):
        efficient_frontier(X, [1.0])
