"""The tail of the active-set method, one element at a time in NumPy (float64 on the CPU).

A batch of small portfolio QPs (n of 10-100 with max weight and group rows) is done, for most of
its elements, after 4-5 active-set solves; a few elements take 10-12. Each batched solve costs
~230 tensor operations, ~0.5-1 ms of dispatch whatever the number of elements it still carries,
so the tail of a few elements costs as much as the bulk. From :data:`FINISH_FROM` solves on, the
elements left are finished here instead: the same restricted update
(:func:`~gradfolio.solvers.qp.active_set.restricted_update`) from the set the batched method
reached, and per iteration the batched method's system (:mod:`gradfolio.solvers.qp.kkt`) for one
element: LAPACK's Cholesky solve (``dposv``) of ``Q_FF + rho C_F'C_F`` (plus the relative shift)
with the right-hand sides ``[C_F', r]``, then of the small Schur complement of the imposed rows
``C`` (the equalities and the active general rows) with its own shift, ~40-50 us in all. The
same system matters: a degenerate set (dependent rows on the free variables) must steer the next
update as it does there (a plain KKT solve with least squares there cycled).

A solution is accepted only when it passes the scaled KKT check of
:func:`~gradfolio.solvers.qp.active_set.solve_on`, so it is exact to rounding. Where an element
starts here depends only on the element (never on its batch), so an element finished here gets
the same bits alone (batch 1) as inside any batch. An element that fails here (a variable fixed
by two bound rows, a factorization failure, a set seen before, no solution within
:data:`FINISH_ITER` iterations) goes on to the interior point, as a cycling element of the
batched method does.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.linalg.lapack import dposv
from torch import Tensor

from gradfolio.solvers.qp.standard_form import StandardForm

#: The batched active-set method hands its unfinished elements to :func:`finish_elements` after
#: this many solves (when :func:`applies`).
FINISH_FROM = 8

#: Most iterations an element gets here (fewer where ``active_set_iter`` leaves fewer): elements
#: that settle do so in a few (at most 12 on the benchmark's problems at n <= 100); the ones that
#: wander until the cap go to the interior point anyway, and each iteration here costs ~50 us.
FINISH_ITER = 14

#: Largest number of variables finished here (beyond it a dense LAPACK solve per iteration is no
#: longer cheap next to a batched solve shared by the elements).
FINISH_N = 120

#: Share of an element's worst violation above which a violated row is added (the batched
#: method's :data:`~gradfolio.solvers.qp.active_set.ADD_FRACTION`).
ADD_FRACTION = 0.5


def applies(form: StandardForm) -> bool:
    """Whether the tail is finished here: a float64 CPU batch of at most :data:`FINISH_N`
    variables with a shared ``G`` (bound rows split off) and inequalities. Depends on the
    problem's size and type only, never on the batch size."""
    n, m = form.q.shape[1], form.h.shape[-1]
    return (form.q.device.type == "cpu" and form.q.dtype == torch.float64 and 0 < n <= FINISH_N and m > 0
            and form.G.ndim == 2 and form.cols.numel() > 0)


def _posv(M: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, int]:
    """``M^{-1} R`` by LAPACK's Cholesky solve (``M`` overwritten) and its ``info`` (nonzero: not
    positive definite); empty systems pass through."""
    if not M.shape[0] or not R.size:
        return R, 0
    _, X, info = dposv(M, R, lower=1, overwrite_a=1, overwrite_b=1)
    return X, info


def finish_elements(
    form: StandardForm, act: Tensor, tol: float, reg: float, iters: int,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None]:
    """Run the restricted active-set update from the active rows ``act (B, m)`` (bool) for every
    element of ``form`` (at most ``min(iters, FINISH_ITER)`` solves each; ``tol`` the scaled KKT
    tolerance, ``reg`` the relative shift of the systems, as in the batched method).

    Returns, per element, ``(x (n,), y (p,), lam (m,), act (m,))`` of its solution, or ``None``
    where it did not finish here.
    """
    B, mg = form.q.shape[0], form.mg
    Qs = form.Q.detach().numpy()
    q_all, h_all, b_all = form.q.detach().numpy(), form.h.detach().numpy(), form.b.detach().numpy()
    G = form.G.detach().numpy()
    Gg = G[:mg]
    A = form.A.detach().numpy()
    A = A if A.ndim == 3 else A[None]
    cols, coef = form.cols.numpy(), form.coef.detach().numpy()
    bval_all = form.bound_value.detach().numpy()
    scale_p, scale_d = form.scale_p.detach().numpy(), form.scale_d.detach().numpy()
    acts = act.numpy()
    iters = min(iters, FINISH_ITER)
    rho_all, sq_all = form.rho.detach().numpy(), form.scale_q.detach().numpy()
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None] = []
    for i in range(B):
        Q = Qs[i] if Qs.ndim == 3 else Qs
        Ai = A[i] if A.shape[0] > 1 else A[0]
        out.append(_iterate(Q, q_all[i], Gg, h_all[i], Ai, b_all[i], cols, coef, bval_all[i], mg,
                            float(scale_p[i]), float(scale_d[i]), float(rho_all[i if rho_all.size > 1 else 0]),
                            float(sq_all[i if sq_all.size > 1 else 0]), acts[i].copy(), tol, reg, iters))
    return out


def _iterate(Q: np.ndarray, q: np.ndarray, Gg: np.ndarray, h: np.ndarray, A: np.ndarray, b: np.ndarray,
             cols: np.ndarray, coef: np.ndarray, bval: np.ndarray, mg: int, scale_p: float, scale_d: float,
             rho: float, scale_q: float, act: np.ndarray, tol: float, reg: float,
             iters: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The restricted active-set iteration of one element (see the module docstring): ``Q (n, n)``,
    ``q (n,)``, the general rows ``Gg (mg, n)``, ``h (m,)``, ``A (p, n)``, ``b (p,)``, the bound rows'
    columns, coefficients and values ``(m - mg,)``, the residual scales, ``rho`` and ``scale_q`` of
    :class:`~gradfolio.solvers.qp.standard_form.StandardForm`, the starting active rows ``act (m,)``."""
    n, m, p = q.shape[0], h.shape[0], b.shape[0]
    R_all, r_all = np.concatenate([A, Gg]), np.concatenate([b, h[:mg]])
    h_b, regq = h[mg:], reg * scale_q
    on = np.ones(p + mg, dtype=bool)
    seen: set[bytes] = set()
    for _ in range(iters):
        key = act.tobytes()
        if key in seen:
            return None
        seen.add(key)
        ab = act[mg:]
        fc = cols[ab]
        free = np.ones(n, dtype=bool)
        free[fc] = False
        F = np.flatnonzero(free)
        if F.size + fc.size != n:  # a variable fixed by two bound rows
            return None
        x = np.zeros(n)
        x[fc] = bval[ab]
        on[p:] = act[:mg]
        rows = np.flatnonzero(on)
        R = R_all[rows]
        C = R[:, F]
        rc = r_all[rows] - R @ x
        # The batched method's system (qp/kkt.py): Q_FF + rho C'C (plus the relative shift), then
        # the Schur complement of the imposed rows with its own shift, so that a degenerate set
        # (dependent rows on the free variables) steers the next update as it does there.
        k, r = F.size, rows.size
        H = Q[F[:, None], F] + rho * (C.T @ C)
        H.flat[:: k + 1] += regq
        rhs = np.empty((k, r + 1))
        rhs[:, :r] = C.T
        rhs[:, r] = rho * (C.T @ rc) - (q + Q @ x)[F]
        sol, info = _posv(H, rhs)
        if info:
            return None
        W, v = sol[:, :r], sol[:, r]
        S = C @ W
        S.flat[:: r + 1] += reg * (1.0 + max(np.abs(S).max(initial=0.0), float(r < p + mg)))
        nu, info = _posv(S, C @ v - rc)
        if info:
            return None
        x[F] = v - W @ nu
        if not np.isfinite(x.sum() + nu.sum()):
            return None
        Qx = Q @ x
        grad = Qx + q + R.T @ nu
        lam = np.zeros(m)
        lam[rows[p:] - p] = nu[p:]
        lam_b = -grad[fc] / coef[ab]
        lam[mg:][ab] = lam_b
        grad[fc] += coef[ab] * lam_b
        s = np.concatenate([h[:mg] - Gg @ x, h_b - coef * x[cols]])
        primal = max(np.abs(np.where(act, s, np.minimum(s, 0.0))).max(), np.abs(A @ x - b).max(initial=0.0))
        dual = max(-lam.min(initial=0.0), np.abs(grad).max())
        if primal <= tol * scale_p and dual <= tol * max(scale_d, 1.0 + np.abs(Qx).max()):
            return x, nu[:p], lam, act
        viol = np.where(act, 0.0, np.maximum(-s, 0.0) / scale_p)
        act = np.where(act, lam > 0, (viol >= ADD_FRACTION * viol.max()) & (viol > 0))
    return None


__all__ = ["FINISH_FROM", "FINISH_ITER", "FINISH_N", "applies", "finish_elements"]
