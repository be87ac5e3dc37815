"""Allocators: the last layer of a network, turning per-asset scores into portfolio weights.

Every allocator maps scores ``z (B, N)`` to weights ``w (B, N)`` and is differentiable:

- :class:`SoftmaxAllocator` — long only, ``w = softmax(z / T)``, ``sum w = 1``, ``w > 0``.
- :class:`NormalizedTanhAllocator` — long/short, ``w = tanh(z) / sum |tanh(z)|``, ``sum |w| = 1``.
- :class:`SparsemaxAllocator` — long only and sparse: the Euclidean projection of ``z`` onto
  ``{0 <= w <= max_weight, sum w = 1}`` (sparsemax when ``max_weight = 1``).
"""

from __future__ import annotations

import torch
from torch import nn

from gradfolio.errors import ConfigError, InfeasibleError


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

    ``eps`` keeps the division finite when every score is zero.
    """

    def __init__(self, eps: float = 1e-20):
        super().__init__()
        self.eps = eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, N) -> (B, N)`` weights with absolute values summing to one."""
        t = torch.tanh(z)
        return t / (t.abs().sum(dim=-1, keepdim=True) + self.eps)


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


ALLOCATORS: dict[str, type[nn.Module]] = {
    "softmax": SoftmaxAllocator,
    "tanh": NormalizedTanhAllocator,
    "sparsemax": SparsemaxAllocator,
}


def make_allocator(allocator: str | nn.Module = "softmax", **params: object) -> nn.Module:
    """An allocator by name (``"softmax"``, ``"tanh"``, ``"sparsemax"``) or an ``nn.Module`` unchanged."""
    if isinstance(allocator, nn.Module):
        return allocator
    if allocator not in ALLOCATORS:
        raise ConfigError(f"allocator={allocator!r} is unknown; use one of {sorted(ALLOCATORS)} or an nn.Module.")
    return ALLOCATORS[allocator](**params)  # type: ignore[arg-type]


__all__ = ["SoftmaxAllocator", "NormalizedTanhAllocator", "SparsemaxAllocator", "ALLOCATORS", "make_allocator"]
