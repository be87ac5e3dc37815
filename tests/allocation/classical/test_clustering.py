"""HERC and NCO against skfolio on the S&P 500 and Fama-French industry windows; the cut of the tree."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.cluster.hierarchy as sch
import torch
from skfolio.cluster import HierarchicalClustering, LinkageMethod
from skfolio.distance import PearsonDistance
from skfolio.optimization import HierarchicalEqualRiskContribution as SkHERC
from skfolio.optimization import MeanRisk
from skfolio.optimization import NestedClustersOptimization as SkNCO

from gradfolio.allocation.classical import HierarchicalEqualRiskContribution, NestedClusteredOptimization
from gradfolio.allocation.classical.clustering import flat_clusters
from gradfolio.errors import ConfigError

TIGHT = dict(solver_params=dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10), scale_objective=1e4)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize(("k", "linkage"), [(3, "ward"), (5, "ward"), (4, "average")])
def test_herc_matches_skfolio(both_windows, k: int, linkage: str) -> None:
    X, frames = both_windows
    w = HierarchicalEqualRiskContribution(n_clusters=k, linkage=linkage)(X)
    for b, f in enumerate(frames):
        ref = SkHERC(
            distance_estimator=PearsonDistance(),
            hierarchical_clustering_estimator=HierarchicalClustering(max_clusters=k, linkage_method=LinkageMethod(linkage)),
        ).fit(f.to_numpy()).weights_
        np.testing.assert_allclose(w[b].numpy(), ref, rtol=0, atol=1e-12)


def test_herc_absolute_distance_matches_skfolio_and_covariance_matters(ff_windows) -> None:
    X, frames = ff_windows(120)
    base = HierarchicalEqualRiskContribution(n_clusters=4)(X)
    absolute = HierarchicalEqualRiskContribution(n_clusters=4, distance="pearson_absolute", linkage="complete")(X)
    for b, f in enumerate(frames):
        ref = SkHERC(
            distance_estimator=PearsonDistance(absolute=True),
            hierarchical_clustering_estimator=HierarchicalClustering(max_clusters=4, linkage_method=LinkageMethod.COMPLETE),
        ).fit(f.to_numpy()).weights_
        np.testing.assert_allclose(absolute[b].numpy(), ref, rtol=0, atol=1e-12)
    shrunk = HierarchicalEqualRiskContribution(n_clusters=4, covariance="ewma")(X)
    assert float((base - shrunk).abs().max()) > 1e-3


@pytest.mark.parametrize("k", [3, 5])
def test_nco_matches_skfolio(both_windows, k: int) -> None:
    X, frames = both_windows
    w = NestedClusteredOptimization(n_clusters=k)(X)
    for b, f in enumerate(frames):
        ref = SkNCO(
            inner_estimator=MeanRisk(**TIGHT),
            outer_estimator=MeanRisk(**TIGHT),
            clustering_estimator=HierarchicalClustering(max_clusters=k),
            cv="ignore",
        ).fit(f.to_numpy()).weights_
        np.testing.assert_allclose(w[b].numpy(), ref, rtol=0, atol=2e-5)
    assert bool((w >= 0).all())
    torch.testing.assert_close(w.sum(-1), torch.ones(len(frames), dtype=w.dtype))


def test_flat_clusters_equal_scipy_fcluster(windows) -> None:
    from gradfolio.allocation.classical.hrp import linkage_matrix

    X, frames = windows(252)
    corr = torch.stack([torch.tensor(np.corrcoef(f.to_numpy().T)) for f in frames])
    dist = ((1 - corr) / 2).clamp(min=0).sqrt()
    dist.diagonal(dim1=-2, dim2=-1).zero_()
    tree = linkage_matrix(dist, "ward")
    for k in (1, 2, 4, 20):
        members, left, right = flat_clusters(tree, k)
        assert members.shape == (4, k, 20) and left.shape == (4, k - 1, k)
        assert bool((members.sum(1) == 1).all())  # a partition
        assert bool(((left & right).sum(-1) == 0).all())
        if k > 1:
            assert bool(((left | right).sum(-1) >= 2).all())
            assert bool((left | right)[:, -1].all())  # the root covers every cluster
        for b in range(4):
            labels = sch.fcluster(tree[b].numpy(), t=k, criterion="maxclust")
            ours = members[b].int().argmax(0).numpy()
            # same partition up to the labels' numbering
            assert len(set(zip(labels, ours))) == k


def test_herc_is_differentiable_and_batched(windows) -> None:
    X, _ = windows(120)
    X = X[..., :8]
    model = HierarchicalEqualRiskContribution(n_clusters=3)
    batched = model(X)
    for b in range(X.shape[0]):
        torch.testing.assert_close(model(X[b : b + 1])[0], batched[b], rtol=0, atol=1e-14)
    x = X[:1, :, -40:].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: model(z), (x,), eps=1e-8, atol=1e-5)
    nco = NestedClusteredOptimization(n_clusters=3)
    w = nco(x)
    (w * torch.arange(8, dtype=w.dtype)).sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


def test_too_many_clusters_is_a_config_error(windows) -> None:
    X, _ = windows(60)
    with pytest.raises(ConfigError, match="n_clusters=21 .* only 20 assets"):
        HierarchicalEqualRiskContribution(n_clusters=21)(X)
    with pytest.raises(ConfigError, match="n_clusters=0"):
        NestedClusteredOptimization(n_clusters=0)
