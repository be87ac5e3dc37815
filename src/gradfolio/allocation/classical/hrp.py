"""Hierarchical risk parity (López de Prado, 2016), with explicit clustering options.

Three stages, per window:

1. **Tree clustering.** A distance between assets is computed from the correlation ``rho`` of
   the chosen covariance estimate, then agglomerated with the chosen ``linkage``
   (Lance–Williams updates, numbered as SciPy's ``linkage``).
2. **Quasi-diagonalization (seriation).** The assets are ordered as the leaves of the
   dendrogram: ``"quasi-diagonal"`` keeps SciPy's leaf order (López de Prado's
   ``getQuasiDiag``, PyPortfolioOpt's ``HRPOpt``); ``"optimal"`` first applies optimal leaf
   ordering (Bar-Joseph et al., 2001; skfolio's default), which puts the most similar
   neighbouring leaves next to each other.
3. **Recursive bisection.** The ordered list is halved recursively; at every split the two
   halves get ``alpha`` and ``1 - alpha`` of the parent's weight with
   ``alpha = 1 - V_left / (V_left + V_right)``, ``V`` the variance of the inverse-variance
   portfolio of the half.

Every stage is batched over windows in torch (a loop over the ``N - 1`` merges / splits, never
over windows) except the optimal leaf ordering, which SciPy computes one window after the other
on the CPU. Bisection splits *positions* of the ordered list, so its splits are the same for
every window; the weights are differentiable with respect to the covariance for a fixed order.

Per-asset bounds ``lo <= w <= hi`` (``constraints=PortfolioConstraints(lower=..., upper=...,
max_weight=...)``) are applied as skfolio's ``HierarchicalRiskParity(min_weights, max_weights)``
does: at every split the factor ``alpha`` of the left half (parent weight ``W``) is clipped to
``[sum lo_left / W, sum hi_left / W]`` and then ``1 - alpha`` to ``[sum lo_right / W, sum hi_right / W]``.
HRP is long-only (``lo >= 0``) and fully invested; groups and leverage are not part of the
algorithm and are refused.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import scipy.cluster.hierarchy as sch
import torch
from scipy.spatial.distance import squareform
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.constrained import as_constraints
from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.allocation.classical.simple import volatilities
from gradfolio.errors import ConfigError
from gradfolio.solvers.constraints import PortfolioConstraints

Linkage = Literal["single", "complete", "average", "ward"]
Distance = Literal["pearson", "pearson_absolute", "pearson_squared"]
Ordering = Literal["quasi-diagonal", "optimal"]
LINKAGES: tuple[str, ...] = get_args(Linkage)
DISTANCES: tuple[str, ...] = get_args(Distance)
ORDERINGS: tuple[str, ...] = get_args(Ordering)


def correlation_distance(corr: Tensor, distance: str = "pearson") -> Tensor:
    """Distances between assets from their correlations (skfolio's ``PearsonDistance``).

    Parameters
    ----------
    corr
        Correlation matrices, shape ``(B, N, N)``.
    distance
        ``"pearson"``: ``sqrt((1 - rho) / 2)`` (the angular distance);
        ``"pearson_absolute"``: ``sqrt(1 - |rho|)``; ``"pearson_squared"``: ``sqrt(1 - rho^2)``.

    Returns
    -------
    Tensor of shape ``(B, N, N)``, values in ``[0, 1]``, zero diagonal.
    """
    if distance == "pearson":
        d2 = 0.5 * (1.0 - corr)
    elif distance == "pearson_absolute":
        d2 = 1.0 - corr.abs()
    elif distance == "pearson_squared":
        d2 = 1.0 - corr**2
    else:
        raise ConfigError(f"distance={distance!r} for HRP: use one of {DISTANCES}.")
    return d2.clamp(0.0, 1.0).sqrt()


def _lance_williams(
    linkage: str, d_ik: Tensor, d_jk: Tensor, d_ij: Tensor, n_i: Tensor, n_j: Tensor, n_k: Tensor
) -> Tensor:
    """Distance from every cluster ``k`` to the merge of ``i`` and ``j`` (SciPy's update formulas)."""
    if linkage == "single":
        return torch.minimum(d_ik, d_jk)
    if linkage == "complete":
        return torch.maximum(d_ik, d_jk)
    if linkage == "average":
        return (n_i * d_ik + n_j * d_jk) / (n_i + n_j)
    total = n_i + n_j + n_k  # ward
    return (((n_k + n_i) * d_ik**2 + (n_k + n_j) * d_jk**2 - n_k * d_ij**2) / total).clamp_min(0.0).sqrt()


@torch.no_grad()
def linkage_matrix(dist: Tensor, linkage: str = "single") -> Tensor:
    """Agglomerative clustering of every window at once, as SciPy's ``linkage``.

    At each of the ``N - 1`` steps every window merges its two closest clusters and updates the
    distances with the Lance–Williams formula of ``linkage``. The clusters are numbered as in
    SciPy (assets ``0..N-1``, the ``s``-th merge ``N + s``; the smaller id first), so the
    result equals SciPy's linkage matrix up to ties between equal distances.

    Parameters
    ----------
    dist
        Symmetric distance matrices, shape ``(B, N, N)``.
    linkage
        ``"single"``, ``"complete"``, ``"average"`` or ``"ward"``.

    Returns
    -------
    Tensor of shape ``(B, N - 1, 4)``: rows ``(left id, right id, height, size)``.
    """
    B, N, _ = dist.shape
    inf = float("inf")
    rows = torch.arange(B, device=dist.device)
    D = dist.clone()
    D.diagonal(dim1=-2, dim2=-1).fill_(inf)
    lower = torch.ones(N, N, dtype=torch.bool, device=dist.device).tril()
    ids = torch.arange(N, device=dist.device).expand(B, N)
    sizes = torch.ones(B, N, dtype=dist.dtype, device=dist.device)
    merges = []
    for s in range(N - 1):
        flat = D.masked_fill(lower, inf).flatten(1).argmin(dim=1)
        i, j = flat // N, flat % N
        d_ij = D[rows, i, j][:, None]
        n_i, n_j = sizes[rows, i][:, None], sizes[rows, j][:, None]
        at_i = torch.nn.functional.one_hot(i, N).bool()
        at_j = torch.nn.functional.one_hot(j, N).bool()
        new = _lance_williams(linkage, D[rows, i], D[rows, j], d_ij, n_i, n_j, sizes)
        new = new.masked_fill(at_i | at_j, inf)
        D = torch.where(at_i[:, :, None], new[:, None, :], torch.where(at_i[:, None, :], new[:, :, None], D))
        D = D.masked_fill(at_j[:, :, None] | at_j[:, None, :], inf)
        id_i, id_j = ids[rows, i], ids[rows, j]
        merges.append(
            torch.stack(
                [torch.minimum(id_i, id_j).to(dist.dtype), torch.maximum(id_i, id_j).to(dist.dtype), d_ij[:, 0], (n_i + n_j)[:, 0]],
                dim=-1,
            )
        )
        sizes = torch.where(at_i, n_i + n_j, sizes)
        ids = torch.where(at_i, N + s, ids)
    return torch.stack(merges, dim=1)


@torch.no_grad()
def leaves_order(tree: Tensor) -> Tensor:
    """Leaf order of dendrograms (SciPy's ``leaves_list``: left subtree first), batched.

    Parameters
    ----------
    tree
        Linkage matrices, shape ``(B, N - 1, 4)`` (see :func:`linkage_matrix`).

    Returns
    -------
    Tensor of shape ``(B, N)``: asset indices in leaf order.
    """
    B, M, _ = tree.shape
    N = M + 1
    rows = torch.arange(B, device=tree.device)
    left, right = tree[..., 0].long(), tree[..., 1].long()
    size = torch.cat([torch.ones(B, N, dtype=tree.dtype, device=tree.device), tree[..., 3]], dim=1)
    start = torch.zeros(B, 2 * N - 1, dtype=tree.dtype, device=tree.device)
    for s in range(N - 2, -1, -1):  # from the root down: children share their parent's span
        parent = start[:, N + s].clone()
        start[rows, left[:, s]] = parent
        start[rows, right[:, s]] = parent + size[rows, left[:, s]]
    return start[:, :N].argsort(dim=1)


def seriate(dist: Tensor, linkage: str = "single", ordering: str = "quasi-diagonal") -> Tensor:
    """Leaf order of the dendrogram of each window.

    Parameters
    ----------
    dist
        Symmetric distance matrices, shape ``(B, N, N)``.
    linkage
        ``"single"``, ``"complete"``, ``"average"`` or ``"ward"``.
    ordering
        ``"quasi-diagonal"`` (SciPy's leaf order, batched in torch) or ``"optimal"`` (SciPy's
        ``optimal_leaf_ordering``, one window after the other on the CPU).

    Returns
    -------
    Integer tensor of shape ``(B, N)`` on ``dist``'s device: asset indices in leaf order.
    """
    tree = linkage_matrix(dist, linkage)
    if ordering == "optimal":
        trees = tree.detach().cpu().double().numpy()
        dists = dist.detach().cpu().double().numpy()
        tree = torch.as_tensor(
            np.stack([sch.optimal_leaf_ordering(t, squareform(d, checks=False)) for t, d in zip(trees, dists)]),
            dtype=dist.dtype,
            device=dist.device,
        )
    return leaves_order(tree)


def bisection_weights(cov: Tensor, lower: Tensor | None = None, upper: Tensor | None = None) -> Tensor:
    """Recursive-bisection weights of covariances whose assets are already in leaf order.

    Parameters
    ----------
    cov
        Covariances, shape ``(B, N, N)``, assets in dendrogram order.
    lower, upper
        Optional per-asset bounds ``(B, N)`` in the same order (both or neither), applied to
        each split as skfolio does (see the module docstring).

    Returns
    -------
    Tensor of shape ``(B, N)``: weights (in the same order) summing to one.
    """
    B, N, _ = cov.shape
    inv_var = 1.0 / cov.diagonal(dim1=-2, dim2=-1)
    weights = torch.ones(B, N, dtype=cov.dtype, device=cov.device)

    def cluster_variance(lo: int, hi: int) -> Tensor:
        ivp = inv_var[:, lo:hi] / inv_var[:, lo:hi].sum(dim=-1, keepdim=True)
        return (ivp[:, None, :] @ cov[:, lo:hi, lo:hi] @ ivp[:, :, None])[:, 0, 0]

    ranges = [(0, N)]
    while ranges:
        splits = []
        for lo, hi in ranges:
            if hi - lo > 1:
                mid = lo + (hi - lo) // 2
                v_left, v_right = cluster_variance(lo, mid), cluster_variance(mid, hi)
                alpha = (1.0 - v_left / (v_left + v_right))[:, None]
                if lower is not None and upper is not None:
                    parent = weights[:, lo:lo + 1]
                    alpha = torch.minimum(upper[:, lo:mid].sum(-1, keepdim=True) / parent,
                                          torch.maximum(lower[:, lo:mid].sum(-1, keepdim=True) / parent, alpha))
                    alpha = 1.0 - torch.minimum(upper[:, mid:hi].sum(-1, keepdim=True) / parent,
                                                torch.maximum(lower[:, mid:hi].sum(-1, keepdim=True) / parent, 1.0 - alpha))
                scale = torch.ones_like(weights)
                scale[:, lo:mid] = alpha
                scale[:, mid:hi] = 1.0 - alpha
                weights = weights * scale
                splits += [(lo, mid), (mid, hi)]
        ranges = splits
    return weights


class HierarchicalRiskParity(ClassicalPortfolio):
    """Hierarchical risk parity with the variance as risk measure, long-only and fully invested.

    With ``linkage="single", distance="pearson", ordering="quasi-diagonal"`` (the defaults,
    López de Prado's original) it matches PyPortfolioOpt's ``HRPOpt``; with any linkage and
    distance it matches skfolio's ``HierarchicalRiskParity`` with ``PearsonDistance`` (same
    ``absolute``/``power``) and ``HierarchicalSeriation(linkage_method, optimal_ordering)``.

    Parameters
    ----------
    linkage
        ``"single"``, ``"complete"``, ``"average"`` or ``"ward"``.
    distance
        ``"pearson"`` (``sqrt((1 - rho) / 2)``), ``"pearson_absolute"`` (``sqrt(1 - |rho|)``)
        or ``"pearson_squared"`` (``sqrt(1 - rho^2)``); ``rho`` is the correlation of the
        covariance estimate.
    ordering
        ``"quasi-diagonal"`` (dendrogram leaf order) or ``"optimal"`` (optimal leaf ordering).
    covariance
        ``"sample"`` (default), ``"ledoit_wolf"``, ``"exponential"`` or a callable.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` with per-asset bounds only (``lower``,
        ``upper``, ``max_weight``, ``long_only``; budget 1): skfolio's ``min_weights`` /
        ``max_weights`` (lower bounds below zero are raised to zero, upper ones above one
        lowered to one). Groups, leverage and turnover raise :class:`ConfigError`.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "hrp"

    def __init__(
        self,
        linkage: Linkage = "single",
        distance: Distance = "pearson",
        ordering: Ordering = "quasi-diagonal",
        covariance: str | CovarianceEstimator = "sample",
        constraints: PortfolioConstraints | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        constraints = as_constraints(constraints, type(self).__name__)
        if constraints is not None:
            unsupported = [k for k in ("groups", "leverage", "turnover") if getattr(constraints, k)]
            if unsupported or constraints.budget != 1.0:
                raise ConfigError(
                    f"constraints for HierarchicalRiskParity: {unsupported or 'budget ' + str(constraints.budget)} "
                    "cannot be applied by recursive bisection (only per-asset bounds, budget 1, as skfolio); use "
                    "min_variance or risk_parity for groups and leverage."
                )
        self.constraints = constraints
        for arg, value, allowed in (
            ("linkage", linkage, LINKAGES),
            ("distance", distance, DISTANCES),
            ("ordering", ordering, ORDERINGS),
        ):
            if value not in allowed:
                raise ConfigError(f"{arg}={value!r} for HierarchicalRiskParity: use one of {allowed}.")
        self.linkage, self.distance, self.ordering = linkage, distance, ordering
        self.covariance = resolve_covariance(covariance)

    def order(self, cov: Tensor) -> Tensor:
        """Dendrogram leaf order of each window, shape ``(B, N)`` (int64, on ``cov``'s device)."""
        sd = volatilities(cov, type(self).__name__)
        corr = cov / (sd[:, :, None] * sd[:, None, :])
        dist = correlation_distance(corr, self.distance)
        dist = 0.5 * (dist + dist.mT)
        dist.diagonal(dim1=-2, dim2=-1).zero_()
        return seriate(dist, self.linkage, self.ordering)

    def allocate(self, R: Tensor) -> Tensor:
        cov = self.covariance(R)
        order = self.order(cov)
        rows = order[:, :, None].expand(-1, -1, cov.shape[-1])
        ordered = cov.gather(1, rows).gather(2, order[:, None, :].expand_as(cov))
        if self.constraints is None:
            w_ordered = bisection_weights(ordered)
        else:
            N = cov.shape[-1]
            self.constraints.compile(N)  # InfeasibleError when the bounds admit no portfolio
            lo, hi = self.constraints.bounds(N)
            bounds = torch.as_tensor(np.stack([np.maximum(lo, 0.0), np.minimum(hi, 1.0)]), dtype=cov.dtype, device=cov.device)
            lower, upper = (bounds[j][order] for j in range(2))
            w_ordered = bisection_weights(ordered, lower, upper)
        return torch.empty_like(w_ordered).scatter_(1, order, w_ordered)
