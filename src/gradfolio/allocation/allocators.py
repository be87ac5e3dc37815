"""Allocators: the last layer of a network, turning per-asset scores into portfolio weights.

Every allocator maps scores ``z (B, N)`` to weights ``w (B, N)`` and is differentiable:

- :class:`SoftmaxAllocator` — long only, ``w = softmax(z / T)``, ``sum w = 1``, ``w > 0``.
- :class:`NormalizedTanhAllocator` — long/short, ``w = tanh(z) / sum |tanh(z)|``, ``sum |w| = 1``.
- :class:`SparsemaxAllocator` — long only and sparse: the Euclidean projection of ``z`` onto
  ``{0 <= w <= max_weight, sum w = 1}`` (sparsemax when ``max_weight = 1``).
- :class:`TopKAllocator` (``"topk"``) — at most ``k`` names, each at least ``min_weight``: the
  Euclidean projection of ``z`` onto that (non-convex) set over the top-``m`` supports; the
  differentiable relaxation of the cardinality constraint of
  :class:`~gradfolio.allocation.classical.CardinalityPortfolio`.
- :class:`~gradfolio.allocation.convex.ConvexAllocator` (``"convex"``) — constrained
  mean-variance weights; it also takes a risk model, which the networks of
  :mod:`gradfolio.allocation.networks` supply from the window (see there).

:data:`ALLOCATORS` holds them by name; :func:`make_allocator` builds one by name with keyword
parameters validated by its class's typed signature (``ALLOCATORS.build``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gradfolio.allocation.convex import ConvexAllocator
from gradfolio.errors import ConfigError, GradfolioError, InfeasibleError
from gradfolio.registry import Registry


class SoftmaxAllocator(nn.Module):
    """Long-only weights ``softmax(z / temperature)``: ``(B, N) -> (B, N)``.

    A small temperature concentrates the portfolio, a large one tends to ``1/N``.
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise ConfigError(f"SoftmaxAllocator: temperature={temperature} must be > 0.")
        self.temperature = temperature

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, N) -> (B, N)`` weights summing to one."""
        return torch.softmax(z / self.temperature, dim=-1)


class NormalizedTanhAllocator(nn.Module):
    """Long/short weights ``tanh(z_i) / sum_j |tanh(z_j)|`` (thesis sec. 1.2.3): ``sum |w| = 1``.

    A sample whose ``sum_j |tanh(z_j)|`` is below the smallest normal number of the dtype
    (every score zero or subnormal) gets the equal long weights ``1 / N`` (zero gradient), so
    ``sum |w| = 1`` holds for every input.
    """

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, N) -> (B, N)`` weights with absolute values summing to one."""
        t = torch.tanh(z)
        gross = t.abs().sum(dim=-1, keepdim=True)
        scaled = gross >= torch.finfo(z.dtype).tiny
        w = t / torch.where(scaled, gross, torch.ones_like(gross))
        return torch.where(scaled, w, torch.full_like(z, 1.0 / z.shape[-1]))


class SparsemaxAllocator(nn.Module):
    """Sparse long-only weights: ``argmin_w ||w - z||^2`` s.t. ``sum w = 1``, ``0 <= w <= max_weight``.

    The solution is ``w = clip(z - tau, 0, max_weight)`` with the threshold ``tau`` found by
    bisection for all samples at once; ``tau`` is then recomputed in closed form from the
    active set, ``tau = (sum_free z - 1 + max_weight * n_upper) / n_free``, which gives the
    exact (implicit-function) gradient through autograd.

    Parameters
    ----------
    max_weight
        Cap on every weight, in ``(0, 1]``; needs ``max_weight * N >= 1``.
    iterations
        Bisection steps (60 reach machine precision in float64).
    """

    def __init__(self, max_weight: float = 1.0, iterations: int = 60):
        super().__init__()
        if not 0 < max_weight <= 1:
            raise ConfigError(f"SparsemaxAllocator: max_weight={max_weight} must lie in (0, 1].")
        self.max_weight = max_weight
        self.iterations = iterations

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, N) -> (B, N)`` weights in ``[0, max_weight]`` summing to one."""
        n = z.shape[-1]
        cap = self.max_weight
        if cap * n < 1 - 1e-12:
            raise InfeasibleError(
                f"SparsemaxAllocator: max_weight={cap} with {n} assets cannot sum to 1; "
                f"use max_weight >= {1 / n:.4g}."
            )
        with torch.no_grad():
            lo = z.amin(dim=-1, keepdim=True) - 1.0  # sum clip(z - lo) >= 1
            hi = z.amax(dim=-1, keepdim=True)  # sum clip(z - hi) = 0
            for _ in range(self.iterations):
                mid = (lo + hi) / 2
                above = torch.clamp(z - mid, 0.0, cap).sum(dim=-1, keepdim=True) > 1
                lo = torch.where(above, mid, lo)
                hi = torch.where(above, hi, mid)
            tau0 = (lo + hi) / 2
            free = ((z - tau0) > 0) & ((z - tau0) < cap)
            upper = (z - tau0) >= cap
            n_free = free.sum(dim=-1, keepdim=True).to(z.dtype)
            n_upper = upper.sum(dim=-1, keepdim=True).to(z.dtype)
        z_free = torch.where(free, z, torch.zeros_like(z)).sum(dim=-1, keepdim=True)
        tau = (z_free - 1 + cap * n_upper) / n_free.clamp(min=1)
        tau = torch.where(n_free > 0, tau, tau0)
        return torch.clamp(z - tau, 0.0, cap)


def _simplex_threshold(y: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """``tau`` with ``sum max(y - tau, 0) = radius`` for ``y (..., m)`` sorted decreasingly; differentiable."""
    m = y.shape[-1]
    j = torch.arange(1, m + 1, dtype=y.dtype, device=y.device)
    taus = (y.cumsum(dim=-1) - radius[..., None]) / j
    rho = ((y - taus) > 0).sum(dim=-1, keepdim=True).clamp(min=1)
    return taus.gather(-1, rho - 1)[..., 0]


class TopKAllocator(nn.Module):
    """At most ``k`` names, each held at least ``min_weight``: a projection of the scores.

    ``w = argmin ||w - z||^2`` over ``{sum w = 1, w >= 0, ||w||_0 <= k, w_i in {0} or [x, 1]}``
    computed over the supports made of the ``m`` largest scores, ``m = 1..k`` (``m x <= 1``): on a
    support ``S`` the projection is ``w_S = x + max(z_S - x - tau, 0)`` with
    ``sum w_S = 1`` (a simplex projection of radius ``1 - m x``), and the ``m`` of least
    ``||w - z||^2`` is kept. For ``x = 0`` this is the exact projection onto the ``k``-sparse
    simplex (greedy selection is optimal there; Kyrillidis et al., "Sparse projections onto the
    simplex"); for ``x > 0`` it is checked against enumerating every support. Piecewise linear
    in ``z``, so gradients flow through the kept weights (zero to the names left out).

    Parameters
    ----------
    k
        Most names held, ``>= 1``.
    min_weight
        Smallest weight of a name held, ``0 <= min_weight <= 1``.
    """

    def __init__(self, k: int = 10, min_weight: float = 0.0):
        super().__init__()
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"TopKAllocator: k={k!r} must be a positive integer.")
        if not 0.0 <= min_weight <= 1.0:
            raise ConfigError(f"TopKAllocator: min_weight={min_weight!r} must lie in [0, 1].")
        self.k, self.min_weight = k, float(min_weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, N) -> (B, N)`` weights: at most ``k`` non-zero, each ``>= min_weight``, summing to one."""
        B, N = z.shape
        x = self.min_weight
        sizes = [m for m in range(1, min(self.k, N) + 1) if m * x <= 1 + 1e-12]
        zs, order = torch.sort(z, dim=-1, descending=True)
        total = (zs * zs).sum(dim=-1)
        best_cost, best_w = None, None
        for m in sizes:
            y = zs[:, :m] - x
            radius = torch.full((B,), max(1.0 - m * x, 0.0), dtype=z.dtype, device=z.device)
            tau = _simplex_threshold(y, radius)
            wm = x + torch.clamp(y - tau[:, None], min=0.0)
            cost = ((wm - zs[:, :m]) ** 2).sum(-1) + total - (zs[:, :m] ** 2).sum(-1)
            w_full = torch.cat([wm, torch.zeros(B, N - m, dtype=z.dtype, device=z.device)], dim=-1)
            if best_cost is None:
                best_cost, best_w = cost, w_full
            else:
                better = (cost < best_cost)[:, None]
                best_cost = torch.where(better[:, 0], cost, best_cost)
                best_w = torch.where(better, w_full, best_w)
        return torch.empty_like(best_w).scatter(-1, order, best_w)


ALLOCATORS: Registry[nn.Module] = Registry("allocator")
"""Allocators by name; each entry's typed signature is the schema of its parameters."""
ALLOCATORS.register("softmax", SoftmaxAllocator)
ALLOCATORS.register("tanh", NormalizedTanhAllocator)
ALLOCATORS.register("sparsemax", SparsemaxAllocator)
ALLOCATORS.register("convex", ConvexAllocator)
ALLOCATORS.register("topk", TopKAllocator)


def make_allocator(
    allocator: str | nn.Module = "softmax", n_assets: int | None = None, *, where: str | None = None, **params: Any
) -> nn.Module:
    """An allocator by name with keyword parameters (``ALLOCATORS.build``), or an ``nn.Module`` unchanged.

    Parameters
    ----------
    allocator
        A name of ``ALLOCATORS`` (``"softmax"``, ``"tanh"``, ``"sparsemax"``, ``"convex"``) or a
        module mapping scores ``(B, N) -> (B, N)``.
    n_assets
        ``N``: needed (and used) only by ``"convex"``, whose problem has a fixed size.
    where
        Dotted config path of ``params`` for messages (default ``"allocator"``).
    **params
        Keyword arguments of the named allocator's class, validated by its typed signature, e.g.
        ``max_weight=0.3`` for ``"sparsemax"``, ``constraints=PortfolioConstraints(long_only=True),
        alpha=0.1`` for ``"convex"``; typed objects may be given as mappings, as a config file gives
        them (``constraints={"long_only": True}``, ``settings={"max_iter": 100}``).

    Raises
    ------
    ConfigError
        An unknown name, or a bad parameter named with its path (``allocator.settings.max_iter: ...``).
    """
    if isinstance(allocator, nn.Module):
        if params:
            raise ConfigError(
                f"make_allocator: parameters {sorted(params)} were given with an allocator module "
                f"{type(allocator).__name__}; configure the module itself or pass the allocator by name."
            )
        return allocator
    context = {"n_assets": n_assets} if n_assets is not None else None
    try:
        return ALLOCATORS.build(allocator, where=where, context=context, **params)
    except GradfolioError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{where or 'allocator'}={allocator!r}: bad parameters {sorted(params)} ({exc}).") from exc


__all__ = ["SoftmaxAllocator", "NormalizedTanhAllocator", "SparsemaxAllocator", "TopKAllocator", "ALLOCATORS", "make_allocator"]
