"""Leverage and turnover without auxiliary variables: an active-set method on the weights alone.

The standard form writes ``sum |w| <= L`` and ``sum |w - c| <= T`` (``c`` the previous weights)
with auxiliary variables ``t >= |w|``, ``u >= |w - c|``: ``3N`` variables and ``4N + 2`` general
rows, on which the primal-dual active-set method meets inconsistent systems and ~100-row Schur
complements, so that such specs ran in the interior point at 2-3x proxsuite's speed. Here the
problem stays in ``N`` variables::

    min_w  1/2 w'Q w + q'w   s.t.  lo <= w <= hi,  R_eq w = rr_eq,  R_g w <= rr_g,
                                   sum_i |w_i| <= L,  sum_i |w_i - c_i| <= T

and the working set says, for every asset, whether it is free or fixed (at a bound, at the kink
``w_i = 0`` of the leverage term or the kink ``w_i = c_i`` of the turnover term) and which sign
``w_i`` and ``w_i - c_i`` keep while it is free. An active leverage row is then the linear row
``sum_F sgn_i w_i = L - sum_X |w_i|`` (turnover likewise), so each working set is an
equality-constrained QP in the free weights: one Cholesky factor of ``Q_FF`` and a Schur complement
of at most ``p + mg + 2`` rows (the equalities, the active general rows, leverage and turnover).

Where the previous weights ``c`` are feasible (bounds, groups, equalities, leverage), the primal
active-set method starts at ``w = c`` with every asset fixed there (turnover is zero): each solve
steps towards the working set's solution up to the first blocking constraint and adds it, or at
the solution releases the row or fixed asset with the most negative multiplier or directional
derivative; blocking rows are never in the span of the active ones, so every system is
nonsingular. Where ``c`` breaks a limit (weights that drifted past a bound or a group limit),
the primal method first solves the problem with those limits moved out to ``c``, and the
primal-dual active-set method (release every asset and row whose multiplier says so, fix every
asset that left its interval, add every violated row; one change at a time after a repeated
working set or ``ITERS`` solves) starts from its working set on the true limits.

A solution is accepted only where the KKT conditions hold with the subgradients of the two terms:
a free asset is stationary with its signs and stays inside the interval they allow; a fixed
asset is within its bounds and has nonnegative directional derivatives of the Lagrangian in
every direction its bounds allow; multipliers of the active rows are nonnegative; every row is
satisfied (all to ``tol`` relative to the data's scale, as
:func:`~gradfolio.solvers.qp.active_set.solve_on`). What is still unsolved, or meets a singular
system, comes back with its status; :class:`~gradfolio.solvers.problem.ConvexProblem` solves
those elements with the standard form (so every element is exact either way).

The backward pass differentiates the final working set's equality-constrained KKT system (as
OptNet does for the active set): ``q``, ``Q`` and the previous weights ``c`` get gradients (``c``
through the turnover row's right-hand side and the assets fixed at ``w_i = c_i``). Like the other
compiled kernels (:mod:`gradfolio.solvers.qp.compiled`), each element is solved alone, so its
bits do not depend on its batch. Float64, CPU, compiled with Numba.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from gradfolio.solvers.qp import compiled
from gradfolio.solvers.qp.standard_form import bound_rows

#: Status of an element (as :mod:`gradfolio.solvers.qp.compiled`): solved, unsolved, singular system.
SOLVED, UNSOLVED, OUTSIDE = compiled.SOLVED, compiled.UNSOLVED, compiled.OUTSIDE

#: Solves of the primal-dual updates (then as many one-change solves) per element.
ITERS = 25


def primal_cap(n: int, mg: int) -> int:
    """Solves allowed to the primal method on ``n`` assets and ``mg`` general rows (each solve adds
    or releases one constraint; measured: 10-40 at n = 10-50, docs/solvers.md)."""
    return 3 * (n + mg) + 20


@dataclass(frozen=True)
class L1Spec:
    """The constraints of one portfolio spec in the form of the kernels (float64 NumPy).

    Attributes
    ----------
    lo, hi
        Per-asset bounds ``(n,)`` (``-inf``/``inf`` for none).
    R, rr
        The ``p`` equalities then the ``mg`` general rows, ``R (p + mg, n)``, ``rr (p + mg,)``.
    p, mg
        Their numbers.
    leverage, turnover
        ``L`` and ``T`` (``inf`` for none).
    """

    lo: np.ndarray
    hi: np.ndarray
    R: np.ndarray
    rr: np.ndarray
    p: int
    mg: int
    leverage: float
    turnover: float

    @classmethod
    def build(cls, G: np.ndarray, h: np.ndarray, A: np.ndarray, b: np.ndarray, leverage: float | None,
              turnover: float | None) -> L1Spec:
        """From the standard form of the same spec without leverage and turnover (``G (m, n) w <= h``,
        ``A (p, n) w = b``): its bound rows become ``lo``/``hi``, the rest the general rows."""
        G, h = np.asarray(G, np.float64), np.asarray(h, np.float64)
        n = G.shape[1] if G.size else A.shape[1]
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
        single = bound_rows(torch.from_numpy(G)).numpy() if G.size else np.zeros(0, bool)
        for row in np.flatnonzero(single):
            i = int(np.flatnonzero(G[row])[0])
            v = h[row] / G[row, i]
            if G[row, i] > 0:
                hi[i] = min(hi[i], v)
            else:
                lo[i] = max(lo[i], v)
        general = ~single
        R = np.ascontiguousarray(np.concatenate([np.asarray(A, np.float64).reshape(-1, n), G[general]]))
        rr = np.ascontiguousarray(np.concatenate([np.asarray(b, np.float64).reshape(-1), h[general]]))
        return cls(lo, hi, R, rr, int(A.shape[0]), int(general.sum()),
                   math.inf if leverage is None else float(leverage), math.inf if turnover is None else float(turnover))

    def args(self) -> tuple:
        """The kernels' spec arguments ``lo, hi, R, rr, p, mg, L, T``."""
        return self.lo, self.hi, self.R, self.rr, self.p, self.mg, self.leverage, self.turnover


def _arr(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy())


class _L1Function(torch.autograd.Function):
    """Forward: the kernels from the first working set; backward: the adjoint on the final one."""

    @staticmethod
    def forward(ctx, Q, q, c, spec, tol, reg):  # type: ignore[override]
        from gradfolio.solvers.qp import _l1_kernels as K

        B, n = q.shape
        kind = np.zeros((B, n), np.int64)
        sgn = np.ones((B, 2, n))
        gact = np.zeros((B, spec.mg), np.bool_)
        on = np.zeros((B, 2), np.bool_)
        x, lam = np.zeros((B, n)), np.zeros((B, spec.p + spec.mg + 2))
        status, used = np.empty(B, np.int64), np.zeros(B, np.int64)
        Qa, qa, ca = _arr(Q), _arr(q), _arr(c)
        K.forward_batch(Qa, qa, ca, *spec.args(), tol, reg, primal_cap(n, spec.mg), ITERS, kind, sgn, gact, on, x, lam, status, used)
        ctx.state = (Qa, qa, ca, kind, sgn, gact, on, x, status)
        ctx.spec, ctx.c_shape, ctx.reg = spec, tuple(c.shape), reg
        xt = torch.from_numpy(x)
        ctx.save_for_backward(xt)
        st = torch.from_numpy(status)
        ctx.mark_non_differentiable(st)
        return xt, st

    @staticmethod
    @once_differentiable
    def backward(ctx, gx, _gstatus):  # type: ignore[override]
        from gradfolio.solvers.qp import _l1_kernels as K

        (xt,) = ctx.saved_tensors
        Qa, qa, ca, kind, sgn, gact, on, x, status = ctx.state
        B, n = qa.shape
        dq, dc, ok = np.zeros((B, n)), np.zeros((B, n)), np.zeros(B, np.bool_)
        K.adjoint_batch(Qa, qa, ca, *ctx.spec.args(), ctx.reg, kind, sgn, gact, on, x, _arr(gx), dq, dc, ok)
        solved = status == SOLVED
        if not ok[solved].all():  # pragma: no cover - the forward factored the same systems
            raise RuntimeError("l1_active_set: a final working set's system failed to factor in the backward pass")
        dq[~solved] = 0.0
        dc[~solved] = 0.0
        dqt = torch.from_numpy(dq)
        dQ = 0.5 * (dqt[:, :, None] * xt[:, None, :] + xt[:, :, None] * dqt[:, None, :])
        dct = torch.from_numpy(dc)
        if ctx.c_shape[0] != B:
            dct = dct.sum(dim=0, keepdim=True)
        return dQ, dqt, dct, None, None, None


def solve_l1(Q: Tensor, q: Tensor, c: Tensor, spec: L1Spec, tol: float, reg: float,
             fallback: Callable[[Tensor], Tensor]) -> Tensor:
    """Solve every element with the kernels; the elements they leave go to ``fallback``.

    Parameters
    ----------
    Q, q
        ``Q (B, n, n)`` (positive definite on the weights), ``q (B, n)``; float64 CPU.
    c
        The previous weights ``(B, n)`` or ``(1, n)`` (shared; zeros without turnover).
    spec
        The constraints (:meth:`L1Spec.build`).
    tol
        Tolerance of the scaled KKT check.
    reg
        Relative shift of the systems (:class:`~gradfolio.solvers.qp.settings.QPSettings` ``reg``).
    fallback
        ``indices (k,) -> x (k, n)``: the solution of those elements by another method
        (differentiable); called only when some element is not solved here.

    Returns
    -------
    Tensor
        ``x (B, n)``, differentiable w.r.t. ``Q``, ``q`` and ``c``.
    """
    x, status = _L1Function.apply(Q, q, c, spec, tol, reg)
    left = torch.nonzero(status != SOLVED).reshape(-1)
    if left.numel():
        x = x.index_put((left,), fallback(left))
    return x


def applies(dtype: torch.dtype, device: torch.device, n: int) -> bool:
    """Whether the kernels take a solve of ``n`` assets computed in ``dtype`` on ``device``: float64
    on the CPU, at most :data:`~gradfolio.solvers.qp.compiled.COMPILED_N` assets, Numba available."""
    return compiled.available() and device.type == "cpu" and dtype == torch.float64 and 0 < n <= compiled.COMPILED_N


def warm() -> None:
    """Compile (or load) the kernels on a tiny problem (``make setup`` calls it once)."""
    n, f64 = 3, torch.float64
    spec = L1Spec.build(np.concatenate([np.eye(n), -np.eye(n)]), np.array([0.6] * n + [0.6] * n), np.ones((1, n)),
                        np.ones(1), 1.5, 0.5)
    Q = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=f64))[None].requires_grad_(True)
    q = torch.tensor([[-1.0, 0.5, 0.2]], dtype=f64)
    x = solve_l1(Q, q, torch.full((1, n), 1 / 3, dtype=f64), spec, 1e-9, 1e-11, lambda idx: q[idx])
    x.sum().backward()


__all__ = ["ITERS", "L1Spec", "OUTSIDE", "SOLVED", "UNSOLVED", "applies", "primal_cap", "solve_l1", "warm"]
