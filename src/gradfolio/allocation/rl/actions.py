"""The action map of the portfolio environment: scores ``a (B, N)`` -> weights ``w (B, N)``, checked.

An agent outputs one score per asset; :class:`ActionMap` turns them into portfolio weights with any
allocator of :data:`~gradfolio.allocation.allocators.ALLOCATORS` (``"softmax"``, ``"tanh"``,
``"sparsemax"``, ``"topk"``, the differentiable convex layer ``"convex"``, which also gets the
window's sample-covariance factor and, with a turnover limit, the weights held) or ``"weights"``
(the action *is* the weights). The weights are then checked against the constraints they must
satisfy (``constraints``, by default those of the convex layer; ``sum w = 1, w >= 0`` for the long-only
simplex allocators): a violation raises a :class:`~gradfolio.errors.DataError` that names the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from gradfolio.allocation.allocators import make_allocator
from gradfolio.allocation.convex import ConvexAllocator
from gradfolio.allocation.networks import window_factor
from gradfolio.errors import ConfigError, DataError
from gradfolio.solvers import PortfolioConstraints

TOLERANCE = 1e-6
"""Slack of the constraint check (a solver's answer is feasible to about this)."""

_SIMPLEX = PortfolioConstraints(budget=1.0, long_only=True)


class ActionMap:
    """Scores ``a (B, N)`` (with the window ``X (B, C, L, N)`` and the held weights) -> weights ``(B, N)``.

    Parameters
    ----------
    n_assets
        ``N``.
    allocator
        A name of ``ALLOCATORS``, ``"weights"`` (identity: the action is the weights) or an ``nn.Module``.
    allocator_params
        Keyword parameters of a named allocator (``{"constraints": {"max_weight": 0.4}}`` for ``"convex"``).
    constraints
        What the weights must satisfy (checked at every step); default: the convex layer's
        constraints, the long-only simplex for softmax/sparsemax/topk, none for tanh and ``"weights"``.
    """

    def __init__(
        self,
        n_assets: int,
        allocator: str | nn.Module = "softmax",
        allocator_params: Mapping[str, Any] | None = None,
        constraints: PortfolioConstraints | Mapping[str, Any] | None = None,
    ) -> None:
        self.n_assets = n_assets
        self.name = allocator if isinstance(allocator, str) else type(allocator).__name__
        params = dict(allocator_params or {})
        self.allocator_params: dict[str, Any] | None = params if isinstance(allocator, str) else None
        """The keyword parameters of a named allocator (what a saved agent rebuilds it from)."""
        if allocator == "weights":
            if params:
                raise ConfigError(f"allocator='weights' takes no allocator_params (got {sorted(params)}).")
            self.allocator: nn.Module | None = None
        else:
            self.allocator = make_allocator(allocator, n_assets=n_assets, where="allocator_params", **params)
        if isinstance(constraints, Mapping):
            constraints = PortfolioConstraints(**constraints)
        if constraints is None:
            if isinstance(self.allocator, ConvexAllocator):
                constraints = self.allocator.problem.constraints
            elif self.name in ("softmax", "sparsemax", "topk"):
                constraints = _SIMPLEX
        self.constraints = constraints
        self._bounds: tuple[Tensor, Tensor] | None = None
        if constraints is not None:
            constraints.check(n_assets)
            lo, hi = constraints.bounds(n_assets)
            self._bounds = (torch.as_tensor(lo), torch.as_tensor(hi))

    def __call__(
        self, action: Tensor, X: Tensor, before: Tensor, step: Tensor | int = 0, where: str = "PortfolioEnv.step"
    ) -> Tensor:
        """Weights ``(B, N)`` of the scores ``action (B, N)``; ``X (B, C, L, N)``, ``before (B, N)``.

        ``step`` (an int or ``(B,)``) is the episode step of each row and ``where`` the caller, named in errors.

        Raises
        ------
        DataError
            An action of the wrong shape or with a non-finite entry, or weights that violate the
            constraints (named, with the step, the row and the amount).
        """
        B, N = before.shape
        steps = step if isinstance(step, Tensor) else torch.full((B,), int(step))
        if not isinstance(action, Tensor) or tuple(action.shape) != (B, N):
            shape = tuple(action.shape) if isinstance(action, Tensor) else type(action).__name__
            raise DataError(
                f"{where} (step {int(steps[0])}): action of shape {shape}; give one score per asset, "
                f"shape ({B}, {N}) (environments, assets)."
            )
        bad = ~torch.isfinite(action)
        if bool(bad.any()):
            b, i = (int(v) for v in bad.nonzero()[0])
            raise DataError(
                f"{where} (step {int(steps[b])}, environment {b}): the action has a non-finite score "
                f"({float(action[b, i])}) for asset {i}; check the agent (a diverged policy outputs NaN)."
            )
        action = action.to(before.dtype)
        if self.allocator is None:
            w = action
        elif isinstance(self.allocator, ConvexAllocator):
            uses_prev = self.allocator.problem.constraints.turnover is not None
            w = self.allocator(action, factor=window_factor(X.to(action.dtype)), w_prev=before if uses_prev else None)
        else:
            w = self.allocator(action)
        self.check(w, before, steps, where)
        return w

    def violations(self, w: Tensor, before: Tensor) -> tuple[Tensor, list[str]]:
        """Amount by which each row of ``w (B, N)`` violates each constraint: ``(B, K)`` and the K names."""
        spec = self.constraints
        if spec is None:
            return torch.zeros(w.shape[0], 0, dtype=w.dtype, device=w.device), []
        cols, names = [], []
        lo, hi = (b.to(device=w.device, dtype=w.dtype) for b in self._bounds)  # type: ignore[union-attr]
        cols.append((lo - w).clamp(min=0).amax(-1))
        names.append("lower bound (long_only/lower/max_weight)")
        cols.append((w - hi).clamp(min=0).amax(-1))
        names.append("upper bound (upper/max_weight)")
        if spec.budget is not None:
            cols.append((w.sum(-1) - spec.budget).abs())
            names.append(f"budget sum w = {spec.budget:g}")
        for g in spec.groups:
            s = w[:, list(g.assets)].sum(-1)  # type: ignore[arg-type]
            over = torch.zeros_like(s)
            if g.upper is not None:
                over = over.maximum(s - g.upper)
            if g.lower is not None:
                over = over.maximum(g.lower - s)
            cols.append(over.clamp(min=0))
            names.append(f"group {g.name!r}")
        if spec.leverage is not None:
            cols.append((w.abs().sum(-1) - spec.leverage).clamp(min=0))
            names.append(f"leverage sum |w| <= {spec.leverage:g}")
        if spec.turnover is not None:
            cols.append(((w - before).abs().sum(-1) - spec.turnover).clamp(min=0))
            names.append(f"turnover sum |w - w_held| <= {spec.turnover:g}")
        return torch.stack(cols, dim=-1), names

    def check(self, w: Tensor, before: Tensor, steps: Tensor, where: str = "PortfolioEnv.step") -> None:
        """Raise :class:`DataError` naming the step if a row of ``w`` is non-finite or violates a constraint."""
        bad = ~torch.isfinite(w)
        if bool(bad.any()):
            b, i = (int(v) for v in bad.nonzero()[0])
            raise DataError(
                f"{where} (step {int(steps[b])}, environment {b}): the allocator {self.name!r} gave a "
                f"non-finite weight for asset {i}; check the action and the allocator's parameters."
            )
        amount, names = self.violations(w, before)
        if amount.numel() and bool((amount > TOLERANCE).any()):
            b, c = (int(v) for v in (amount > TOLERANCE).nonzero()[0])
            raise DataError(
                f"{where} (step {int(steps[b])}, environment {b}): the weights violate the {names[c]} "
                f"constraint by {float(amount[b, c]):.3g} (allocator {self.name!r}); map the action through an "
                "allocator that enforces the constraints (e.g. 'convex'), or give feasible weights."
            )


__all__ = ["ActionMap", "TOLERANCE"]
