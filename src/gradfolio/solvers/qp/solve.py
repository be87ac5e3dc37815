"""Batched dense convex QP solver in torch, differentiable by implicit differentiation.

Solves, for every batch element ``b`` at once::

    min_x  1/2 x'Q_b x + q_b'x   s.t.  A_b x = b_b,  G_b x <= h_b

with the primal-dual active-set method (:mod:`gradfolio.solvers.qp.active_set`), which ends with
the exact solution, and a primal-dual interior-point method (:mod:`gradfolio.solvers.qp.ipm`) for
the elements it leaves; there is no Python loop over batch elements. An element that
does not converge raises :class:`~gradfolio.errors.SolverError` naming it (never NaN weights).

The backward pass differentiates the KKT conditions at the solution (OptNet, Amos & Kolter
2017): one solve with the active set's KKT matrix (:mod:`gradfolio.solvers.qp.active_set`) gives
the adjoint, from which the gradients of ``Q, q, G, h, A, b`` are formed (``Q``, ``A`` and ``G``
may be shared by the batch, i.e. 2-D). At a weakly active constraint (zero slack and zero
multiplier) the solution map is not differentiable; the gradient is then the one of the active
set the solver identified.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from gradfolio.errors import ConfigError
from gradfolio.solvers.qp import compiled
from gradfolio.solvers.qp.active_set import ActiveSet, primal_dual_active_set
from gradfolio.solvers.qp.ipm import interior_point, raise_unfinished
from gradfolio.solvers.qp.settings import QPSettings
from gradfolio.solvers.qp.standard_form import Rows, Solution, StandardForm, bound_rows_last
from gradfolio.solvers.qp.threads import auto_threads, intra_op_threads


def _grad_shared(g: Tensor, like: Tensor) -> Tensor:
    """Sum a batched gradient over the batch when the input was shared (2-D)."""
    return g.sum(dim=0) if like.ndim == 2 else g


def _outer(u: Tensor, v: Tensor) -> Tensor:
    """Batched outer products ``u v'`` ``(B, r, c)``."""
    return u.unsqueeze(-1) * v.unsqueeze(-2)


def _solve(Q: Tensor, q: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor, settings: QPSettings,
           rows: Rows) -> tuple[Solution, ActiveSet | None]:
    """The forward solve of :func:`solve_qp` on checked inputs (``q (B, n)``, the rest batched or
    shared as :func:`solve_qp` leaves them, ``G``'s bound rows last): the solution, and the last
    active-set factorization when it covers the whole batch (the backward pass's system; ``None``
    otherwise). Run under the thread rule."""
    with intra_op_threads(auto_threads(q.shape[0], q.shape[1], settings.threads)):
        form = StandardForm.build(Q, q, G, h, A, b, rows)
        B, n, m, p = form.shape
        sol, left, system = primal_dual_active_set(form, settings)
        if m == 0:  # no inequalities: the equality-constrained solve was the whole problem
            raise_unfinished(left, B, f"the equality-constrained KKT system has no finite solution ({q.dtype})")
        elif left.numel():
            interior_point(form.take(left), settings, sol, left, B)
        return sol, system


class _QPFunction(torch.autograd.Function):
    """Autograd wrapper: active-set (then interior-point) forward, active-set KKT implicit differentiation backward."""

    @staticmethod
    def forward(ctx, Q, q, G, h, A, b, settings, rows):  # type: ignore[override]
        sol, system = _solve(Q, q, G, h, A, b, settings, rows)
        # The last active-set factorization is the backward pass's system when it covers the whole
        # batch; otherwise backward factors the system of the final active sets.
        ctx.settings, ctx.system, ctx.rows = settings, system, rows
        ctx.save_for_backward(Q, q, G, h, A, b, sol.x, sol.y, sol.lam, sol.act)
        return sol.x

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_x):  # type: ignore[override]
        with intra_op_threads(auto_threads(grad_x.shape[0], grad_x.shape[1], ctx.settings.threads)):
            return _QPFunction._backward(ctx, grad_x)

    @staticmethod
    def _backward(ctx, grad_x):  # type: ignore[no-untyped-def]
        Q, q, G, h, A, b, x, y, lam, act = ctx.saved_tensors
        system, ctx.system = ctx.system, None  # a second backward (retain_graph) factors the system again
        adj = None
        if system is None:
            form = StandardForm.build(Q, q, G, h, A, b, ctx.rows)
            if ctx.settings.compiled and compiled.applies(form):
                adj = compiled.adjoint(form, act, ctx.settings.reg, grad_x.to(q.dtype))
            if adj is None:
                system = ActiveSet(form, act, ctx.settings.reg)
        dx, dy, dlam = adj if adj is not None else system.adjoint(grad_x)
        need = ctx.needs_input_grad
        gQ = _grad_shared(0.5 * (_outer(dx, x) + _outer(x, dx)), Q) if need[0] else None
        gG = _grad_shared(_outer(dlam, x) + _outer(lam, dx), G) if need[2] else None
        gA = _grad_shared(_outer(dy, x) + _outer(y, dx), A) if need[4] else None
        return gQ, dx, gG, -dlam, gA, -dy, None, None


def _batched(t: Tensor | None, name: str, B: int, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """Check shape; broadcast a shared vector to ``(B, ...)`` (matrices may stay 2-D)."""
    if t is None:
        return like.new_zeros((B, *shape)) if len(shape) == 1 else like.new_zeros(shape)
    if not isinstance(t, Tensor) or t.dtype != like.dtype or t.device != like.device:  # no op when it is already
        t = torch.as_tensor(t, device=like.device).to(like.dtype)
    if tuple(t.shape[-len(shape):]) != shape or t.ndim not in (len(shape), len(shape) + 1) or (
        t.ndim == len(shape) + 1 and t.shape[0] != B
    ):
        raise ConfigError(
            f"solve_qp: {name} has shape {tuple(t.shape)}; expected {shape} (shared) or {(B, *shape)} "
            "(one per batch element)."
        )
    if len(shape) == 1 and t.ndim == 1:
        t = t.expand(B, -1)
    return t


def solve_qp(
    Q: Tensor,
    q: Tensor,
    G: Tensor | None = None,
    h: Tensor | None = None,
    A: Tensor | None = None,
    b: Tensor | None = None,
    settings: QPSettings | None = None,
) -> Tensor:
    """Solve a batch of convex QPs ``min 1/2 x'Qx + q'x s.t. Ax = b, Gx <= h``.

    Differentiable with respect to every tensor argument (implicit differentiation of the KKT
    conditions at the solution). Works on any device; the result has the dtype of ``q`` (float32
    inputs are solved in float64 unless ``settings.compute_dtype`` says otherwise).

    Parameters
    ----------
    Q
        Positive semidefinite matrices ``(B, n, n)`` (or ``(n, n)`` shared by the batch).
    q
        Linear terms ``(B, n)``.
    G, h
        Inequalities ``G (m, n)`` or ``(B, m, n)``, ``h (m,)`` or ``(B, m)``; omit for none.
    A, b
        Equalities ``A (p, n)`` or ``(B, p, n)`` (full row rank), ``b (p,)`` or ``(B, p)``.
    settings
        :class:`QPSettings` (tolerance, iteration cap).

    Returns
    -------
    Tensor
        The solutions ``x``, shape ``(B, n)``.

    Raises
    ------
    ConfigError
        Inconsistent shapes.
    SolverError
        Some batch elements did not converge (they are named).
    """
    settings = settings or QPSettings()
    if q.ndim != 2:
        raise ConfigError(f"solve_qp: q must have shape (B, n); got {tuple(q.shape)}.")
    B, n = q.shape
    out_dtype = q.dtype
    if settings.compute_dtype is not None and q.dtype != settings.compute_dtype:
        q = q.to(settings.compute_dtype)
    Q = _batched(Q, "Q", B, (n, n), q)
    m = 0 if G is None else G.shape[-2]
    p = 0 if A is None else A.shape[-2]
    G = _batched(G, "G", B, (m, n), q)
    h = _batched(h, "h", B, (m,), q)
    A = _batched(A, "A", B, (p, n), q)
    b = _batched(b, "b", B, (p,), q)
    perm, G, rows = _sorted_rows(G, A)
    if perm is not None:
        h = h[:, perm]
    if torch.is_grad_enabled() and any(t.requires_grad for t in (Q, q, G, h, A, b)):
        x = _QPFunction.apply(Q, q, G, h, A, b, settings, rows)
    else:  # nothing to differentiate: the same solve without the autograd Function (~15 us at batch 1)
        x = _solve(Q, q, G, h, A, b, settings, rows)[0].x
    return x if x.dtype == out_dtype else x.to(out_dtype)


#: :func:`_sorted_rows` of recent shared ``(G, A)`` pairs, by identity: the caller's tensors (a
#: ``ConvexProblem`` passes the same ones on every call), held by weak references and checked
#: against their version counters (an in-place change recomputes them). The sorted ``G`` is kept
#: only where it is a copy (``None`` for an already sorted ``G``: the entry must not hold ``G``).
_ROWS: dict[tuple[int, int], tuple[weakref.ref, weakref.ref, int, int, Tensor | None, Tensor | None, Rows]] = {}
_ROWS_KEPT = 32


def _sorted_rows(G: Tensor, A: Tensor) -> tuple[Tensor | None, Tensor, Rows]:
    """A shared ``G``'s rows sorted with the bound rows (one nonzero) last, where
    :class:`StandardForm` keeps them as (column, coefficient): the permutation (``None`` for a
    batched ``G``), the sorted ``G`` and its :class:`Rows` with ``A``. Cached for shared,
    constant matrices (~0.2 ms of small tensor operations per call otherwise)."""
    if G.ndim != 2 or G.requires_grad or A.requires_grad:
        return _sort_rows(G, A)
    key = (id(G), id(A))
    hit = _ROWS.get(key)
    if hit is not None and hit[0]() is G and hit[1]() is A and hit[2] == G._version and hit[3] == A._version:
        return hit[4], G if hit[5] is None else hit[5], hit[6]
    perm, Gs, rows = _sort_rows(G, A)
    if len(_ROWS) >= _ROWS_KEPT:
        _ROWS.pop(next(iter(_ROWS)))
    _ROWS[key] = (weakref.ref(G), weakref.ref(A), G._version, A._version, perm, None if Gs is G else Gs, rows)
    return perm, Gs, rows


def _sort_rows(G: Tensor, A: Tensor) -> tuple[Tensor | None, Tensor, Rows]:
    """:func:`_sorted_rows` computed (no cache)."""
    perm = bound_rows_last(G) if G.ndim == 2 else None  # None where sorted already: no h to permute per call
    Gs = G if perm is None else G[perm]
    return perm, Gs, Rows.of(Gs, A)


__all__ = ["QPSettings", "solve_qp"]
