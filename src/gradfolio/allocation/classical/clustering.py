"""Cluster-based portfolios: hierarchical equal risk contribution (HERC) and nested clustered
optimization (NCO), ``X (B, C, L, N) -> w (B, N)``.

Both cut the dendrogram of the assets (the agglomerative clustering of
:func:`~gradfolio.allocation.classical.hrp.linkage_matrix` on the correlation distance, Ward
linkage by default) into ``n_clusters`` flat clusters: the clusters alive after the first
``N - n_clusters`` merges (SciPy's ``fcluster(criterion="maxclust")`` for a monotone linkage).
The cut is found per window on the CPU (a few integer operations); everything numeric is
batched in torch and differentiable with respect to the covariance for a fixed clustering.

HERC (Raffinot, "The Hierarchical Equal Risk Contribution Portfolio"), variance as risk measure
    Inside cluster ``k`` the weights are inverse-variance, ``u_k``; the cluster's risk is
    ``r_k = u_k' S u_k``. From the root down to the cut, every merge splits its weight between
    its left and right subtrees in proportion ``alpha = 1 - r_L / (r_L + r_R)`` and
    ``1 - alpha``, ``r_L`` the summed risk of the clusters under the left child; an asset's
    weight is its cluster's weight times its ``u_k``. skfolio's
    ``HierarchicalEqualRiskContribution`` with ``HierarchicalClustering(max_clusters=k)``.
NCO (López de Prado, "A Robust Estimator of the Efficient Frontier")
    Inner: the long-only minimum-variance portfolio ``u_k`` of each cluster (one batched QP
    over windows x clusters); outer: the long-only minimum-variance portfolio ``v`` of the
    clusters with covariance ``U S U'`` (``U (k, N)`` the inner weights); ``w = v' U``.
    skfolio's ``NestedClustersOptimization(cv="ignore")`` with minimum-variance ``MeanRisk``
    inner and outer estimators (skfolio re-estimates the covariance of the cluster returns
    ``X U'``; for the sample covariance that is ``U S U'`` exactly).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.allocation.classical.hrp import Distance, Linkage, correlation_distance, linkage_matrix
from gradfolio.allocation.classical.mean_variance import _scaled_covariance, solve_long_only_qp
from gradfolio.allocation.classical.simple import volatilities
from gradfolio.errors import ConfigError


def flat_clusters(tree: Tensor, n_clusters: int) -> tuple[Tensor, Tensor, Tensor]:
    """Cut dendrograms into ``n_clusters`` flat clusters, with the merges above the cut.

    Parameters
    ----------
    tree
        Linkage matrices, shape ``(B, N - 1, 4)`` (SciPy's numbering).
    n_clusters
        Number of clusters ``K``, ``1 <= K <= N``.

    Returns
    -------
    members
        Boolean ``(B, K, N)``: ``members[b, k, i]`` iff asset ``i`` is in cluster ``k``.
    left, right
        Boolean ``(B, K - 1, K)``: for each merge above the cut, the clusters under its left
        and right child.
    """
    trees = tree.detach().cpu().numpy()
    B, M, _ = trees.shape
    N, K = M + 1, n_clusters
    members = np.zeros((B, K, N), dtype=bool)
    left = np.zeros((B, max(K - 1, 0), K), dtype=bool)
    right = np.zeros_like(left)
    for b in range(B):
        leaves: dict[int, list[int]] = {i: [i] for i in range(N)}
        for s in range(N - K):
            leaves[N + s] = leaves.pop(int(trees[b, s, 0])) + leaves.pop(int(trees[b, s, 1]))
        ids = sorted(leaves)
        under: dict[int, list[int]] = {}
        for k, node in enumerate(ids):
            members[b, k, leaves[node]] = True
            under[node] = [k]
        for j, s in enumerate(range(N - K, N - 1)):
            lo, hi = int(trees[b, s, 0]), int(trees[b, s, 1])
            left[b, j, under[lo]] = True
            right[b, j, under[hi]] = True
            under[N + s] = under.pop(lo) + under.pop(hi)
    dev = tree.device
    return torch.as_tensor(members, device=dev), torch.as_tensor(left, device=dev), torch.as_tensor(right, device=dev)


class _Clustered(ClassicalPortfolio):
    """Shared clustering of HERC and NCO (see the module text)."""

    def __init__(
        self,
        n_clusters: int = 4,
        linkage: Linkage = "ward",
        distance: Distance = "pearson",
        covariance: str | CovarianceEstimator = "sample",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(n_clusters, int) or n_clusters < 1:
            raise ConfigError(f"n_clusters={n_clusters!r} for {type(self).__name__}: use a positive integer.")
        self.n_clusters, self.linkage, self.distance = n_clusters, linkage, distance
        self.covariance = resolve_covariance(covariance)

    def clusters(self, cov: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:func:`flat_clusters` of the covariances ``cov (B, N, N)``."""
        N = cov.shape[-1]
        if self.n_clusters > N:
            raise ConfigError(
                f"n_clusters={self.n_clusters} for {type(self).__name__}: X has only {N} assets; "
                f"use n_clusters <= {N}."
            )
        sd = volatilities(cov, type(self).__name__)
        dist = correlation_distance(cov / (sd[:, :, None] * sd[:, None, :]), self.distance)
        dist = 0.5 * (dist + dist.mT)
        dist.diagonal(dim1=-2, dim2=-1).zero_()
        return flat_clusters(linkage_matrix(dist.detach(), self.linkage), self.n_clusters)


class HierarchicalEqualRiskContribution(_Clustered):
    """Hierarchical equal risk contribution with the variance (skfolio's ``HierarchicalEqualRiskContribution``).

    Parameters
    ----------
    n_clusters
        Number of flat clusters the dendrogram is cut into.
    linkage
        ``"ward"`` (default), ``"single"``, ``"complete"`` or ``"average"``.
    distance
        ``"pearson"`` (default), ``"pearson_absolute"`` or ``"pearson_squared"``.
    covariance
        Covariance estimator name of :data:`COVARIANCES` or a callable.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "herc"

    def allocate(self, R: Tensor) -> Tensor:
        cov = self.covariance(R)
        members, left, right = self.clusters(cov)
        m = members.to(cov.dtype)
        inv = m / cov.diagonal(dim1=-2, dim2=-1)[:, None, :]
        U = inv / inv.sum(dim=-1, keepdim=True)  # (B, K, N)
        risk = torch.einsum("bkn,bnm,bkm->bk", U, cov, U)
        lf, rf = left.to(cov.dtype), right.to(cov.dtype)
        r_left = (lf * risk[:, None, :]).sum(-1)
        r_right = (rf * risk[:, None, :]).sum(-1)
        alpha = (1.0 - r_left / (r_left + r_right))[..., None]  # (B, K - 1, 1)
        factor = lf * alpha + rf * (1.0 - alpha) + (1.0 - lf - rf)
        cluster_weight = factor.prod(dim=1)  # (B, K)
        return (cluster_weight[:, :, None] * U).sum(dim=1)


class NestedClusteredOptimization(_Clustered):
    """Nested clustered optimization, minimum variance inside and across clusters (skfolio's ``NestedClustersOptimization``).

    Parameters
    ----------
    n_clusters, linkage, distance, covariance, returns_channel, returns_kind
        See :class:`HierarchicalEqualRiskContribution`.
    """

    name = "nco"

    def allocate(self, R: Tensor) -> Tensor:
        cov = self.covariance(R)
        members, _, _ = self.clusters(cov)
        B, K, N = members.shape
        S = _scaled_covariance(cov, type(self).__name__).double()
        m = members.to(S.dtype)
        # inner: non-members get an own positive variance and no budget, hence weight zero
        Q = S[:, None] * m[..., :, None] * m[..., None, :] + torch.diag_embed(1.0 - m)
        U = solve_long_only_qp(Q.reshape(B * K, N, N), m.reshape(B * K, N)).reshape(B, K, N) * m
        U = U / U.sum(dim=-1, keepdim=True)
        outer = U @ S @ U.mT
        v = solve_long_only_qp(outer, torch.ones(B, K, dtype=S.dtype, device=S.device))
        w = (v[:, None, :] @ U)[:, 0]
        return (w / w.sum(dim=-1, keepdim=True)).to(R.dtype)


__all__ = ["flat_clusters", "HierarchicalEqualRiskContribution", "NestedClusteredOptimization"]
