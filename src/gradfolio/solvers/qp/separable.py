"""First guess of the active set: the exact solution of the QP with ``Q`` replaced by its diagonal.

For a QP with bound rows and at most one equality (the budget), the *separable* problem keeps
the bounds and the equality, drops the general inequality rows (groups, leverage, turnover) and
replaces ``Q`` by its diagonal::

    min_x  sum_i 1/2 d_i x_i^2 + q_i x_i   s.t.  a'x = b,  lo <= x <= hi     (d = diag Q)

is solved exactly by water-filling: ``x_i(nu) = clip((-q_i - nu a_i) / d_i, lo_i, hi_i)`` and
``g(nu) = a'x(nu)`` is nonincreasing and piecewise linear in the multiplier ``nu``, with its
breakpoints where some ``x_i`` reaches a bound. Sorting the ``2n`` breakpoints and summing the
free and clamped parts of ``g`` with cumulative sums gives ``g`` on every piece, hence the root
``g(nu) = b`` in ``O(n log n)`` per element, without a loop.

The bounds it clamps are the primal-dual active-set method's starting active set
(:func:`~gradfolio.solvers.qp.active_set.primal_dual_active_set`; general rows start inactive).
On portfolio problems most assets of the solution sit at a bound, and the separable problem
finds most of them: at ``n = 50`` the method then needs about 4 solves instead of 6, each on
the few free assets, instead of starting with a solve over all ``n``. The guess only chooses
where the method starts, never what it accepts (every solution is checked against the KKT
conditions).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfolio.solvers.qp.standard_form import StandardForm


def _bounds(form: StandardForm) -> tuple[Tensor, Tensor]:
    """Per-variable bounds ``lo, hi (B, n)`` from the bound rows (``-inf``/``inf`` where none)."""
    B, n = form.q.shape
    index = form.cols.expand(B, -1)
    lower = form.coef < 0
    lo = form.q.new_full((B, n), -torch.inf).scatter_reduce(
        1, index, torch.where(lower, form.bound_value, -torch.inf), "amax")
    hi = form.q.new_full((B, n), torch.inf).scatter_reduce(
        1, index, torch.where(lower, torch.inf, form.bound_value), "amin")
    return lo, hi


def _multiplier(v: Tensor, a: Tensor, w: Tensor, lo: Tensor, hi: Tensor, b: Tensor) -> Tensor:
    """Root ``nu (B, 1)`` of ``g(nu) = a' clip(v - nu w, lo, hi) = b`` (NaN where there is none).

    ``v, a, w (B, n)`` are ``-q / d``, ``a`` and ``a / d``. A variable is free for ``nu`` between
    its breakpoints ``t1 <= t2`` and sits at one bound (``x_left``) before ``t1`` and at the
    other (``x_right``) after ``t2``; on the piece after the ``k``-th sorted breakpoint,
    ``g(nu) = S - nu W + C`` with ``S`` the sum of ``a v`` and ``W`` the sum of ``a^2 / d`` over
    the free variables, and ``C`` the sum of ``a x`` over the clamped ones.
    """
    B, n = v.shape
    up = w > 0
    ends = torch.stack([torch.where(up, hi, lo), torch.where(up, lo, hi)], dim=1)  # x_left, x_right (B, 2, n)
    # A variable with a = 0 does not enter g (its breakpoints go to +-inf, its steps are zero); an
    # infinite breakpoint is never crossed, so its infinite bound never enters C.
    times = torch.nan_to_num((v[:, None] - ends) / w[:, None], nan=torch.inf).view(B, 2 * n)
    ax = torch.nan_to_num(a[:, None] * ends, nan=0.0, posinf=0.0, neginf=0.0)
    # Changes of (S, W, C) at each breakpoint: a variable leaves x_left at t1, reaches x_right at t2.
    gain = torch.stack([a * v, a * w], dim=-1)[:, None]  # (B, 1, n, 2)
    sign = torch.tensor([1.0, -1.0], dtype=v.dtype, device=v.device)[:, None, None]
    steps = torch.cat([gain * sign, (ax * -sign[..., 0])[..., None]], dim=-1).view(B, 2 * n, 3)
    times, order = torch.sort(times, dim=-1)
    S, W, C = steps.gather(1, order[..., None].expand(-1, -1, 3)).cumsum(dim=1).unbind(-1)
    nu = (S + C + ax[:, 0].sum(dim=-1, keepdim=True) - b[:, None]) / W
    nxt = torch.cat([times[:, 1:], times.new_full((B, 1), torch.inf)], dim=-1)
    found = (W > 0) & (nu >= times) & (nu <= nxt)
    k = found.int().argmax(dim=-1, keepdim=True)
    return torch.where(found.any(dim=-1, keepdim=True), nu.gather(-1, k), torch.nan)


def _solve(form: StandardForm) -> tuple[Tensor, Tensor] | None:
    """``v - nu w`` at the root before clipping, and the solution ``x``, both ``(B, n)``;
    ``None`` when the problem has no bound rows or several equalities."""
    B, n, _, p = form.shape
    if p > 1 or not form.cols.numel():
        return None
    lo, hi = _bounds(form)
    d = form.Q.diagonal(dim1=-2, dim2=-1).expand(B, n).clamp_min(1e-12 * form.scale_q[:, None])
    v = -form.q / d
    if p:
        a = form.A[..., 0, :].expand(B, n)
        w = a / d
        v = v - _multiplier(v, a, w, lo, hi, form.b[:, 0]) * w
    return v, torch.minimum(torch.maximum(v, lo), hi)


def separable_solution(form: StandardForm) -> Tensor | None:
    """Solution ``x (B, n)`` of the separable problem (module docstring), NaN for an element where
    no root of the budget was found; ``None`` unless there are bound rows and at most one
    equality.

    A zero or negative diagonal entry of ``Q`` is raised to ``1e-12`` times the scale of ``Q``.
    """
    solved = _solve(form)
    return None if solved is None else solved[1]


def separable_active_set(form: StandardForm) -> Tensor | None:
    """The bound rows that clamp the separable solution, ``(B, m)`` bool, general rows inactive
    (``None`` where :func:`separable_solution` gives none; no rows for an element without a
    solution).

    A row is active where its variable sits at the row's value and the unclipped value lies on or
    beyond it, so that of a fixed variable (``lo == hi``) only the side it was clipped from is.
    """
    solved = _solve(form)
    if solved is None:
        return None
    u, x = (t[:, form.cols] for t in solved)
    bound = (x == form.bound_value) & (form.coef * (u - form.bound_value) >= 0)
    return torch.cat([bound.new_zeros(bound.shape[0], form.mg), bound], dim=-1) if form.mg else bound


__all__ = ["separable_active_set", "separable_solution"]
