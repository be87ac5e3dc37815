"""Hierarchical risk parity against PyPortfolioOpt's HRPOpt and skfolio for every option."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
import torch
from pypfopt import HRPOpt
from scipy.spatial.distance import squareform
from skfolio.cluster import HierarchicalClustering, LinkageMethod
from skfolio.distance import PearsonDistance
from skfolio.optimization import HierarchicalRiskParity as SkHRP
from skfolio.seriation import HierarchicalSeriation

from gradfolio.allocation.classical import HierarchicalRiskParity
from gradfolio.allocation.classical.hrp import (
    bisection_weights,
    correlation_distance,
    leaves_order,
    linkage_matrix,
)
from gradfolio.errors import ConfigError

SK_DISTANCE = {"pearson": (False, 1), "pearson_absolute": (True, 1), "pearson_squared": (False, 2)}


def test_default_matches_pypfopt(windows) -> None:
    X, frames = windows(252)
    w = HierarchicalRiskParity()(X)
    for b, f in enumerate(frames):
        ref = HRPOpt(f).optimize()
        np.testing.assert_allclose(w[b].numpy(), np.array([ref[a] for a in f.columns]), atol=1e-12)


@pytest.mark.parametrize("linkage", ["single", "complete", "average", "ward"])
def test_every_option_matches_skfolio(windows, linkage: str) -> None:
    X, frames = windows(252, ends=(4500, 8312))
    for distance, ordering in itertools.product(SK_DISTANCE, ["quasi-diagonal", "optimal"]):
        w = HierarchicalRiskParity(linkage, distance, ordering)(X)
        absolute, power = SK_DISTANCE[distance]
        clustering = HierarchicalClustering(linkage_method=LinkageMethod(linkage))
        model = SkHRP(
            distance_estimator=PearsonDistance(absolute=absolute, power=power),
            seriation_estimator=HierarchicalSeriation(
                hierarchical_clustering_estimator=clustering, optimal_ordering=ordering == "optimal"
            ),
        )
        for b, f in enumerate(frames):
            np.testing.assert_allclose(w[b].numpy(), model.fit(f).weights_, atol=1e-12)


def test_options_change_the_portfolio(windows) -> None:
    X, _ = windows(252)
    base = HierarchicalRiskParity()(X)
    for other in (
        HierarchicalRiskParity(linkage="ward"),
        HierarchicalRiskParity(ordering="optimal"),
        HierarchicalRiskParity(covariance="ledoit_wolf"),
    ):
        assert (other(X) - base).abs().max() > 1e-3


@pytest.mark.parametrize("linkage", ["single", "complete", "average", "ward"])
def test_batched_linkage_equals_scipy(sp500_returns, linkage: str) -> None:
    ends = range(300, len(sp500_returns), 199)  # 41 windows over 33 years
    X = torch.tensor(np.stack([sp500_returns.iloc[e - 120 : e].to_numpy() for e in ends]))
    corr = torch.tensor(np.stack([np.corrcoef(x.T) for x in X.numpy()]))
    for distance in ("pearson", "pearson_squared"):
        dist = correlation_distance(corr, distance)
        dist = 0.5 * (dist + dist.mT)
        dist.diagonal(dim1=-2, dim2=-1).zero_()
        tree = linkage_matrix(dist, linkage)
        order = leaves_order(tree)
        for b, d in enumerate(dist.numpy()):
            ref = sch.linkage(squareform(d, checks=False), method=linkage)
            np.testing.assert_allclose(tree[b].numpy(), ref, rtol=1e-12, atol=1e-14)
            np.testing.assert_array_equal(order[b].numpy(), sch.leaves_list(ref))


def test_distances_closed_form() -> None:
    rho = torch.tensor([[[1.0, 0.5], [0.5, 1.0]], [[1.0, -0.6], [-0.6, 1.0]]], dtype=torch.float64)
    for name, squared in (("pearson", [0.25, 0.8]), ("pearson_absolute", [0.5, 0.4]), ("pearson_squared", [0.75, 0.64])):
        expected = torch.tensor(squared, dtype=torch.float64).sqrt()
        torch.testing.assert_close(correlation_distance(rho, name)[:, 0, 1], expected)


def test_bisection_closed_form_two_assets() -> None:
    # two assets: weights proportional to the inverse variances, whatever the correlation
    cov = torch.tensor([[[0.04, 0.01], [0.01, 0.01]]], dtype=torch.float64)
    torch.testing.assert_close(bisection_weights(cov), torch.tensor([[0.2, 0.8]], dtype=torch.float64))


def test_batched_equals_one_by_one_and_grad(windows) -> None:
    X, _ = windows(100)
    model = HierarchicalRiskParity(linkage="average", ordering="optimal")
    batched = model(X)
    torch.testing.assert_close(batched.sum(-1), torch.ones(4, dtype=X.dtype))
    for b in range(X.shape[0]):
        torch.testing.assert_close(model(X[b : b + 1])[0], batched[b], rtol=0, atol=1e-15)
    Xg = X.clone().requires_grad_(True)
    model(Xg)[:, 0].sum().backward()  # differentiable for the fixed ordering
    assert Xg.grad is not None and bool(Xg.grad.abs().sum() > 0)


def test_gradient_matches_finite_differences(windows) -> None:
    # bisection weights as a function of the covariance, and the whole portfolio as a function of
    # the returns (the ordering is fixed under the small perturbations): autograd against central
    # differences, so an inverse variance that drops out of the graph is caught, not only a zero gradient
    g = torch.Generator().manual_seed(11)
    A = torch.randn(2, 5, 5, generator=g, dtype=torch.float64)
    cov = (A @ A.mT / 5 + 0.1 * torch.eye(5, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(bisection_weights, (cov,), eps=1e-6, atol=1e-8, rtol=1e-6)
    X, _ = windows(40, ends=(4500,))
    Xs = X[..., :5].clone().requires_grad_(True)
    model = HierarchicalRiskParity(linkage="average")
    assert torch.autograd.gradcheck(model, (Xs,), eps=1e-7, atol=1e-6, rtol=1e-5)


def test_hrp_errors() -> None:
    with pytest.raises(ConfigError, match="linkage='median'"):
        HierarchicalRiskParity(linkage="median")
    with pytest.raises(ConfigError, match="distance='kendall'"):
        HierarchicalRiskParity(distance="kendall")
    with pytest.raises(ConfigError, match="ordering='spectral'"):
        HierarchicalRiskParity(ordering="spectral")
