"""The small-problem path: the primal-dual active-set method for one problem in NumPy (float64).

A single problem (batch 1: inference, one rebalance date) of a few dozen variables costs the
torch path ~100 tensor operations per active-set solve, each ~4 us to dispatch: the solve is
overhead, not arithmetic. This path runs the same method on the same data with NumPy and one
dense LAPACK solve of the KKT system per iteration (a few us each)::

    [[Q_FF, C_F'], [C_F, 0]] [x_F; nu] = [-(q + Q x_fixed)_F; r_C - C x_fixed]

with ``F`` the free variables (those no active bound row fixes) and ``C`` the equalities and the
active general rows, from the separable problem's first guess
(:func:`~gradfolio.solvers.qp.separable.separable_active_set`), then the primal-dual update
(keep active rows with a positive multiplier, add violated ones; where that would fix every
variable of the budget by bounds, the torch path's guarded step,
:func:`~gradfolio.solvers.qp.active_set.next_active_set`). A solution is accepted only when
it passes the KKT check of :func:`~gradfolio.solvers.qp.active_set.solve_on` (same scaled
tolerances), so it is the torch path's solution to rounding. Anything outside the plain method
(a variable fixed by two bound rows, a cycle, no solution within
``active_set_iter`` solves) returns ``None`` and the torch path solves the problem as before; the
backward pass always runs in torch, from the active set found here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gradfolio.solvers.qp.active_set import next_active_set, starvable
from gradfolio.solvers.qp.separable import separable_active_set
from gradfolio.solvers.qp.settings import QPSettings
from gradfolio.solvers.qp.standard_form import StandardForm

#: Largest number of variables the path takes (beyond it a dense LAPACK solve per iteration is
#: no longer cheap next to the torch path's overhead).
SMALL_N = 200


def solve_single(form: StandardForm, settings: QPSettings) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """``(x (1, n), y (1, p), lam (1, m), act (1, m))`` of a single float64 CPU problem, or ``None``
    when the path is off (``settings.single_numpy``), does not apply or does not finish (the torch
    path then solves it)."""
    B, n, m, p = form.shape
    q_t = form.q
    if not settings.single_numpy or B != 1 or m == 0 or n > SMALL_N or q_t.device.type != "cpu" or q_t.dtype != torch.float64 or not settings.active_set_iter:
        return None
    tol, _, _ = settings.tolerances(q_t.dtype)
    np_ = lambda v: v.detach().numpy()  # noqa: E731
    t = lambda v: torch.from_numpy(v)[None]  # noqa: E731
    Q, q = np_(form.Q.reshape(-1, n, n)[0]), np_(q_t[0])
    mg = form.mg
    G, h = np_(form.G.reshape(-1, m, n)[0]), np_(form.h[0])
    Gg, hg = G[:mg], h[:mg]
    A, b = np_(form.A.reshape(-1, p, n)[0]), np_(form.b[0])
    cols, coef, bval = np_(form.cols), np_(form.coef), np_(form.bound_value[0])
    scale_p, scale_d = float(form.scale_p[0]), float(form.scale_d[0])
    guess = separable_active_set(form)
    act = np_(guess[0]).copy() if guess is not None else np.zeros(m, dtype=bool)
    seen: set[bytes] = set()
    for _ in range(settings.active_set_iter):
        key = act.tobytes()
        if key in seen:
            return None
        seen.add(key)
        ab, ag = act[mg:], act[:mg]
        fixcount = np.bincount(cols[ab], minlength=n)
        if fixcount.size and fixcount.max() > 1:
            return None
        x = np.zeros(n)
        x[cols[ab]] = bval[ab]
        F = np.flatnonzero(fixcount == 0)
        C = np.concatenate([A, Gg[ag]])
        rc = np.concatenate([b, hg[ag]]) - C @ x
        k, r = F.size, C.shape[0]
        K = np.zeros((k + r, k + r))
        K[:k, :k] = Q[F][:, F]
        K[:k, k:] = C[:, F].T
        K[k:, :k] = C[:, F]
        rhs = np.concatenate([-(q + Q @ x)[F], rc])
        try:
            sol = np.linalg.solve(K, rhs)
        except np.linalg.LinAlgError:
            # More imposed rows than free variables (a guess that over-fixes): the least-squares
            # multipliers steer the next update, as the torch path's regularized Schur complement does.
            sol = np.linalg.lstsq(K, rhs, rcond=None)[0]
        if not np.isfinite(sol).all():
            return None
        x[F] = sol[:k]
        y = sol[k:k + p]
        lam_g = np.zeros(mg)
        lam_g[ag] = sol[k + p:]
        Qx = Q @ x
        grad = Qx + q + A.T @ y + Gg.T @ lam_g
        lam_b = np.zeros(m - mg)
        lam_b[ab] = -grad[cols[ab]] / coef[ab]
        rd = grad + np.bincount(cols, coef * lam_b, minlength=n)
        lam = np.concatenate([lam_g, lam_b])
        s = h - np.concatenate([Gg @ x, coef * x[cols]])
        primal = max(np.abs(np.where(act, s, np.minimum(s, 0.0))).max(), np.abs(A @ x - b).max(initial=0.0))
        dual = max(-lam.min(initial=0.0), np.abs(rd).max())
        if primal <= tol * scale_p and dual <= tol * max(scale_d, 1.0 + np.abs(Qx).max()):
            return t(x), t(y), t(lam), t(act)
        new = np.where(act, lam > 0, s < 0)
        if p == 1 and mg < m and not ((np.bincount(cols[new[mg:]], minlength=n) == 0) & (A[0] != 0)).any():
            # Every variable of the budget would be fixed by bounds: the torch path's guarded step
            # (rare; a few tensor operations).
            new = next_active_set(form, t(act), t(lam), t(s), torch.zeros(1, dtype=torch.bool),
                                  starvable(form))[0].numpy()
        act = new
    return None


__all__ = ["SMALL_N", "solve_single"]
