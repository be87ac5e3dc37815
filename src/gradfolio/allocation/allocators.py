"""Allocators: the last layer of a network, turning per-asset scores into portfolio weights.

Every allocator maps scores ``z (B, N)`` to weights ``w (B, N)`` and is differentiable:

- :class:`SoftmaxAllocator` — long only, ``w = softmax(z / T)``, ``sum w = 1``, ``w > 0``.
- :class:`NormalizedTanhAllocator` — long/short, ``w = tanh(z) / sum |tanh(z)|``, ``sum |w| = 1``.
- :class:`SparsemaxAllocator` — long only and sparse: the Euclidean projection of ``z`` onto
  ``{0 <= w <= max_weight, sum w = 1}`` (sparsemax when ``max_weight = 1``).
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


ALLOCATORS: Registry[nn.Module] = Registry("allocator")
"""Allocators by name; each entry's typed signature is the schema of its parameters."""
ALLOCATORS.register("softmax", SoftmaxAllocator)
ALLOCATORS.register("tanh", NormalizedTanhAllocator)
ALLOCATORS.register("sparsemax", SparsemaxAllocator)
ALLOCATORS.register("convex", ConvexAllocator)


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


__all__ = ["SoftmaxAllocator", "NormalizedTanhAllocator", "SparsemaxAllocator", "ALLOCATORS", "make_allocator"]
