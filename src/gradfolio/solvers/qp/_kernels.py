"""Numba kernels of :mod:`gradfolio.solvers.qp.compiled` (imported on first use: compiling or
loading them costs time that a process which never solves a QP should not pay).

Every function here works on one element; :func:`forward_batch` and :func:`adjoint_batch` loop
over the batch. Arrays are float64 (index arrays int64, active rows bool). Shapes: ``n``
variables, ``m`` inequality rows of which the first ``mg`` are general and the rest bound rows
(``coef * x[cols] <= h``, binding at ``bval = h / coef``), ``p`` equalities; ``R_all (p + mg, n)``
stacks the equalities and the general rows, ``r_all (p + mg,)`` their right-hand sides.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

SOLVED, UNSOLVED, OUTSIDE = 0, 1, 2

#: Compiled once, cached on disk; divisions follow IEEE (inf/NaN, as in NumPy and torch) instead
#: of raising ZeroDivisionError.
_jit = njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _cholesky(M, k):  # pragma: no cover - compiled
    """Lower Cholesky factor of ``M[:k, :k]`` in place; False where it is not positive definite."""
    for j in range(k):
        d = M[j, j]
        for t in range(j):
            d -= M[j, t] * M[j, t]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        M[j, j] = d
        for i in range(j + 1, k):
            v = M[i, j]
            for t in range(j):
                v -= M[i, t] * M[j, t]
            M[i, j] = v / d
    return True


@_jit
def _cho_solve(L, k, X, c):  # pragma: no cover - compiled
    """``X[:k, :c] <- (L L')^{-1} X[:k, :c]`` for the factor ``L[:k, :k]`` of :func:`_cholesky`."""
    for col in range(c):
        for i in range(k):
            v = X[i, col]
            for t in range(i):
                v -= L[i, t] * X[t, col]
            X[i, col] = v / L[i, i]
        for i in range(k - 1, -1, -1):
            v = X[i, col]
            for t in range(i + 1, k):
                v -= L[t, i] * X[t, col]
            X[i, col] = v / L[i, i]


@_jit
def _scratch(n, r):  # pragma: no cover - compiled
    """Work arrays of one element's systems (``n`` variables, ``r`` equality and general rows):
    ``cnt, x, F, rows, C, H, W, S, rc, nu, rhs`` as :func:`_free`, :func:`_factor` and :func:`_solve` use them."""
    return (np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.int64), np.zeros(r, np.int64), np.zeros((r, n)),
            np.zeros((n, n)), np.zeros((n, r)), np.zeros((r, r)), np.zeros(r), np.zeros(r), np.zeros(n))


@_jit
def _free(act, mg, cols, bval, cnt, x, F):  # pragma: no cover - compiled
    """Fixed variables of the active rows ``act``: their values into ``x`` (zero elsewhere), the
    free variables into ``F``; returns their number, or -1 where a variable is fixed twice."""
    n = x.shape[0]
    cnt[:] = 0
    x[:] = 0.0
    for j in range(cols.shape[0]):
        if act[mg + j]:
            cnt[cols[j]] += 1
            x[cols[j]] = bval[j]
    k = 0
    for i in range(n):
        if cnt[i] > 1:
            return -1
        if cnt[i] == 0:
            F[k] = i
            k += 1
    return k


@_jit
def _factor(Q, R_all, p, mg, act, F, k, rho, scale_q, reg, rows, C, H, W, S):  # pragma: no cover - compiled
    """Form and factor the active-set system (the batched method's, qp/kkt.py) for the free
    variables ``F[:k]``: ``H = Q_FF + rho C'C + reg scale_q I`` (a second try with ``1e-8 scale_q``
    more), ``W = H^{-1} C'`` and the Schur complement ``S = C W`` shifted by
    ``reg (1 + max |S|)`` (the batched ``S`` also holds a unit diagonal on the inactive rows),
    factored unless it is ``1 x 1``. ``C`` gets the imposed rows (the equalities and the active
    general rows, their indices into ``rows``) on the free variables. Returns the number of
    imposed rows, or -1 where a factorization fails."""
    r = 0
    for i in range(p + mg):
        if i < p or act[i - p]:
            rows[r] = i
            r += 1
    for a in range(r):
        for c in range(k):
            C[a, c] = R_all[rows[a], F[c]]
    for attempt in range(2):
        for a in range(k):
            for c in range(k):
                v = 0.0
                for t in range(r):
                    v += C[t, a] * C[t, c]
                H[a, c] = Q[F[a], F[c]] + rho * v
            H[a, a] += reg * scale_q + (1e-8 * scale_q if attempt else 0.0)
        if _cholesky(H, k):
            break
        if attempt:
            return -1
    if not r:
        return 0
    for a in range(k):
        for t in range(r):
            W[a, t] = C[t, a]
    _cho_solve(H, k, W, r)
    smax = 1.0 if r < p + mg else 0.0
    for a in range(r):
        for c in range(r):
            v = 0.0
            for t in range(k):
                v += C[a, t] * W[t, c]
            S[a, c] = v
            smax = max(smax, abs(v))
    for a in range(r):
        S[a, a] += reg * (1.0 + smax)
    if r == 1:
        return 1 if S[0, 0] > 0.0 else -1
    return r if _cholesky(S, r) else -1


@_jit
def _system(Q, R_all, p, mg, act, cols, bval, rho, scale_q, reg, cnt, x, F, rows, C, H, W, S):  # pragma: no cover
    """:func:`_free` then :func:`_factor` for the active rows ``act``: ``(k, r)``, the numbers of
    free variables and imposed rows, ``r = -1`` where a variable is fixed twice or a
    factorization fails."""
    k = _free(act, mg, cols, bval, cnt, x, F)
    if k < 0:
        return k, -1
    return k, _factor(Q, R_all, p, mg, act, F, k, rho, scale_q, reg, rows, C, H, W, S)


@_jit
def _solve(H, W, S, C, k, r, rhs, rc, nu):  # pragma: no cover - compiled
    """With the factors of :func:`_factor`: ``H dx + C' nu = rhs``, ``C dx = rc`` (``rhs (k,)``
    overwritten with ``dx``, ``nu (r,)``)."""
    v2 = rhs.reshape((rhs.shape[0], 1))
    _cho_solve(H, k, v2, 1)
    for a in range(r):
        v = -rc[a]
        for t in range(k):
            v += C[a, t] * rhs[t]
        nu[a] = v
    if r == 1:
        nu[0] = nu[0] / S[0, 0]
    elif r > 1:
        _cho_solve(S, r, nu.reshape((nu.shape[0], 1)), 1)
    for c in range(k):
        v = rhs[c]
        for a in range(r):
            v -= W[c, a] * nu[a]
        rhs[c] = v


@_jit
def _matvec(Q, x, out, nz):  # pragma: no cover - compiled
    """``out = Q x``, over the nonzero entries of ``x`` only (``nz``: scratch of ``n`` indices):
    most weights of a portfolio sit at a zero bound. The sums run in the same order as over all
    entries, and adding ``0 * Q_ij`` changes no finite sum, so the bits are those of the dense product."""
    n = x.shape[0]
    k = 0
    for j in range(n):
        if x[j] != 0.0:
            nz[k] = j
            k += 1
    for i in range(n):
        v = 0.0
        for t in range(k):
            v += Q[i, nz[t]] * x[nz[t]]
        out[i] = v


@_jit
def separable_guess(Q, q, a, b, p, mg, cols, coef, bval, scale_q, act):  # pragma: no cover - compiled
    """The separable problem's active bound rows into ``act (m,)`` (general rows inactive): the
    first guess of :func:`gradfolio.solvers.qp.separable.separable_active_set`, the same
    water-filling (``Q`` replaced by its diagonal, the budget ``a'x = b`` when ``p == 1``, the
    bound rows) on one element; no rows where no root of the budget was found."""
    n = q.shape[0]
    mb = cols.shape[0]
    lo = np.full(n, -np.inf)
    hi = np.full(n, np.inf)
    for j in range(mb):
        if coef[j] < 0:
            lo[cols[j]] = max(lo[cols[j]], bval[j])
        else:
            hi[cols[j]] = min(hi[cols[j]], bval[j])
    floor = 1e-12 * scale_q
    u = np.empty(n)
    d = np.empty(n)
    for i in range(n):
        d[i] = max(Q[i, i], floor)
        u[i] = -q[i] / d[i]
    act[:] = False
    if p > 1:  # several equalities: no guess (the empty set)
        return
    if p == 1:
        # g(nu) = a' clip(u - nu w, lo, hi), w = a / d: sorted breakpoints, running sums.
        times = np.empty(2 * n)
        steps = np.empty((2 * n, 3))
        base = 0.0
        for i in range(n):
            w = a[i] / d[i]
            left, right = (hi[i], lo[i]) if w > 0 else (lo[i], hi[i])
            for e, end in enumerate((left, right)):
                t = (u[i] - end) / w
                o = e * n + i  # the batched code's order (all left ends, then all right ends)
                times[o] = np.inf if math.isnan(t) else t
                ax = a[i] * end
                ax = 0.0 if not math.isfinite(ax) else ax
                sign = 1.0 if e == 0 else -1.0
                steps[o, 0] = sign * a[i] * u[i]
                steps[o, 1] = sign * a[i] * w
                steps[o, 2] = -sign * ax
                if e == 0:
                    base += ax
        order = np.argsort(times, kind="mergesort")
        Ssum, Wsum, Csum = 0.0, 0.0, 0.0
        nu = np.nan
        for t in range(2 * n):
            o = order[t]
            Ssum += steps[o, 0]
            Wsum += steps[o, 1]
            Csum += steps[o, 2]
            root = (Ssum + Csum + base - b) / Wsum
            nxt = times[order[t + 1]] if t + 1 < 2 * n else np.inf
            if Wsum > 0 and root >= times[o] and root <= nxt:
                nu = root
                break
        if math.isnan(nu):
            return
        for i in range(n):
            u[i] -= nu * a[i] / d[i]
    for j in range(mb):
        i = cols[j]
        x = min(max(u[i], lo[i]), hi[i])
        act[mg + j] = x == bval[j] and coef[j] * (u[i] - bval[j]) >= 0


@_jit
def update(act, lam, s, mg, cols, coef, bval, a, b, scale_p, restricted, add_fraction, support, cnt, new):  # pragma: no cover
    """The batched method's update into ``new (m,)`` for one unfinished element:
    :func:`~gradfolio.solvers.qp.active_set.restricted_update` where ``restricted``, else
    :func:`~gradfolio.solvers.qp.active_set.next_active_set` (with its guarded step where
    ``support`` > 0 and the update would fix every variable of the equality ``a'x = b``);
    ``cnt``: scratch of ``n`` integers."""
    m = act.shape[0]
    if restricted:
        worst = 0.0
        for i in range(m):
            if not act[i]:
                worst = max(worst, max(-s[i], 0.0) / scale_p)
        for i in range(m):
            if act[i]:
                new[i] = lam[i] > 0.0
            else:
                v = max(-s[i], 0.0) / scale_p
                new[i] = v >= add_fraction * worst and v > 0.0
        return
    nact = 0
    for i in range(m):
        new[i] = lam[i] > 0.0 if act[i] else s[i] < 0.0
        if i >= mg and new[i]:
            nact += 1
    if support and nact >= support and _starved(new, mg, cols, a, cnt):
        _guarded(new, act, lam, s, mg, cols, coef, bval, a, b, cnt)


@_jit
def solve_element(Q, q, R_all, r_all, mg, h, cols, coef, bval, scale_p, scale_d, rho, scale_q, act, tol, reg,
                  iters, restrict_from, cycle_from, add_fraction, support, x_out, y_out, lam_out, used):  # pragma: no cover
    """The active-set method on one element (see :mod:`gradfolio.solvers.qp.compiled`) from the
    active rows ``act (m,)`` (overwritten with the final ones); ``support``: the number of
    variables of the single equality where the guarded step applies (0: never); ``used (1,)``
    gets the number of solves. Returns the status."""
    n = q.shape[0]
    m = h.shape[0]
    p = R_all.shape[0] - mg
    mb = m - mg
    cnt, x, F, rows, C, H, W, S, rc, nu, rhs = _scratch(n, p + mg)
    Qx = np.zeros(n)
    grad = np.zeros(n)
    lam = np.zeros(m)
    s = np.zeros(m)
    new = np.zeros(m, np.bool_)
    tried = np.zeros((2 * iters, m), np.bool_)
    cautious, cstart = False, 0
    for it in range(2 * iters):
        used[0] = it + 1
        tried[it, :] = act
        k, r = _system(Q, R_all, p, mg, act, cols, bval, rho, scale_q, reg, cnt, x, F, rows, C, H, W, S)
        if r < 0:
            return OUTSIDE
        _matvec(Q, x, Qx, cnt)
        for a in range(r):
            v = r_all[rows[a]]
            for i in range(n):
                v -= R_all[rows[a], i] * x[i]
            rc[a] = v
        for c in range(k):
            v = 0.0
            for a in range(r):
                v += C[a, c] * rc[a]
            rhs[c] = rho * v - (q[F[c]] + Qx[F[c]])
        _solve(H, W, S, C, k, r, rhs, rc, nu)
        for c in range(k):
            x[F[c]] = rhs[c]
        # Multipliers, residuals and the scaled KKT check of active_set.solve_on.
        finite = True
        _matvec(Q, x, Qx, cnt)
        for i in range(n):
            grad[i] = Qx[i] + q[i]
            finite = finite and math.isfinite(x[i])
        for a in range(r):
            finite = finite and math.isfinite(nu[a])
            for i in range(n):
                grad[i] += R_all[rows[a], i] * nu[a]
        if not finite:
            return UNSOLVED
        lam[:] = 0.0
        for a in range(p, r):
            lam[rows[a] - p] = nu[a]
        for j in range(mb):
            if act[mg + j]:
                lam[mg + j] = -grad[cols[j]] / coef[j]
        for j in range(mb):
            if act[mg + j]:
                grad[cols[j]] += coef[j] * lam[mg + j]
        for g in range(mg):
            v = h[g]
            for i in range(n):
                v -= R_all[p + g, i] * x[i]
            s[g] = v
        for j in range(mb):
            s[mg + j] = h[mg + j] - coef[j] * x[cols[j]]
        primal = 0.0
        for i in range(m):
            primal = max(primal, abs(s[i]) if act[i] else max(-s[i], 0.0))
        for e in range(p):
            v = -r_all[e]
            for i in range(n):
                v += R_all[e, i] * x[i]
            primal = max(primal, abs(v))
        dual, qmax = 0.0, 0.0
        for i in range(m):
            dual = max(dual, -lam[i])
        for i in range(n):
            dual = max(dual, abs(grad[i]))
            qmax = max(qmax, abs(Qx[i]))
        if primal <= tol * scale_p and dual <= tol * max(scale_d, 1.0 + qmax):
            x_out[:] = x
            y_out[:] = nu[:p]
            lam_out[:] = lam
            return SOLVED
        # The update.
        if not cautious and it == iters - 1:  # the cap of the primal-dual updates
            cautious, cstart = True, it + 1
        if cautious:
            # One row at a time: drop the active row with the most negative multiplier, else add the
            # most violated inactive row.
            new[:] = act
            worst, best = 0.0, -1
            for i in range(m):
                if act[i] and lam[i] <= worst:
                    worst, best = lam[i], i
            if best < 0:
                for i in range(m):
                    if not act[i] and -s[i] / scale_p > worst:
                        worst, best = -s[i] / scale_p, i
            if best < 0:
                return UNSOLVED
            new[best] = not act[best]
        else:
            update(act, lam, s, mg, cols, coef, bval, R_all[0] if p else q, r_all[0] if p else 0.0, scale_p,
                   it >= restrict_from, add_fraction, support, cnt, new)
        if it >= cycle_from:
            for t in range(cstart, it + 1):
                same = True
                for i in range(m):
                    if tried[t, i] != new[i]:
                        same = False
                        break
                if same:
                    if cautious:
                        return UNSOLVED
                    cautious, cstart = True, it + 1
                    break
        act[:] = new
    return UNSOLVED


@_jit
def _starved(act, mg, cols, a, cnt):  # pragma: no cover - compiled
    """Whether the bound rows of ``act`` fix every variable of the equality ``a'x = b`` (``cnt``: scratch)."""
    cnt[:] = 0
    for j in range(cols.shape[0]):
        if act[mg + j]:
            cnt[cols[j]] += 1
    for i in range(a.shape[0]):
        if cnt[i] == 0 and a[i] != 0.0:
            return False
    return True


@_jit
def _guarded(new, act, lam, s, mg, cols, coef, bval, a, b, cnt):  # pragma: no cover - compiled
    """:func:`~gradfolio.solvers.qp.active_set._guarded_update` into ``new``."""
    m = act.shape[0]
    worst, vmin = -1, np.inf
    for i in range(m):
        new[i] = act[i] and lam[i] > 0.0
        if not act[i] and s[i] < vmin:
            worst, vmin = i, s[i]
    if worst < 0:  # every row active: the argmin of all-inf is the first row, and inf < 0 is False
        new[0] = False
    else:
        new[worst] = vmin < 0.0
    fixed = np.zeros(a.shape[0])
    cnt[:] = 0
    for j in range(cols.shape[0]):
        if new[mg + j]:
            cnt[cols[j]] += 1
            fixed[cols[j]] += bval[j]
    gap = b
    starved = True
    for i in range(a.shape[0]):
        if cnt[i]:
            gap -= a[i] * (fixed[i] / cnt[i])
        elif a[i] != 0.0:
            starved = False
    best, score = -1, np.inf
    if starved:
        for j in range(cols.shape[0]):
            if new[mg + j] and act[mg + j] and gap * a[cols[j]] * -coef[j] > 0.0 and lam[mg + j] < score:
                best, score = j, lam[mg + j]
    if best >= 0:
        new[mg + best] = False


@_jit
def adjoint_element(Q, R_all, mg, cols, coef, rho, scale_q, act, reg, g, dx, dy, dlam):  # pragma: no cover
    """The adjoint of the implicit differentiation on the final active rows ``act``:
    ``K [dx; dlam; dy] = [-g; 0; 0]`` with the active-set KKT matrix ``K`` (the system of
    :func:`_factor`), ``dlam`` zero on inactive rows. Returns False where a factorization fails."""
    n = g.shape[0]
    p = R_all.shape[0] - mg
    cnt, x, F, rows, C, H, W, S, rc, nu, rhs = _scratch(n, p + mg)
    bval = np.zeros(cols.shape[0])
    k, r = _system(Q, R_all, p, mg, act, cols, bval, rho, scale_q, reg, cnt, x, F, rows, C, H, W, S)
    if r < 0:
        return False
    for c in range(k):
        rhs[c] = -g[F[c]]
    _solve(H, W, S, C, k, r, rhs, rc, nu)
    dx[:] = 0.0
    for c in range(k):
        dx[F[c]] = rhs[c]
    _matvec(Q, dx, x, cnt)  # x: Q dx
    for i in range(n):
        x[i] += g[i]
    for a in range(r):
        for i in range(n):
            x[i] += R_all[rows[a], i] * nu[a]
    dy[:] = nu[:p]
    dlam[:] = 0.0
    for a in range(p, r):
        dlam[rows[a] - p] = nu[a]
    for j in range(cols.shape[0]):
        if act[mg + j]:
            dlam[mg + j] = -x[cols[j]] / coef[j]
    return True


@_jit
def _scale_q(Q):  # pragma: no cover - compiled
    """``max(1, max|Q_ii|)``: :attr:`~gradfolio.solvers.qp.standard_form.StandardForm.scale_q` of one element."""
    dm = 1.0
    for i in range(Q.shape[0]):
        dm = max(dm, abs(Q[i, i]))
    return dm


@_jit
def _scales(Q, q, h, b, colsq):  # pragma: no cover - compiled
    """:class:`~gradfolio.solvers.qp.standard_form.StandardForm`'s scales of one element:
    ``(scale_p, scale_d, scale_q, rho)`` = ``1 + max|h, b|``, ``1 + max|q|``, :func:`_scale_q`
    and ``scale_q / colsq``."""
    hb = 0.0
    for i in range(h.shape[0]):
        hb = max(hb, abs(h[i]))
    for i in range(b.shape[0]):
        hb = max(hb, abs(b[i]))
    qm = 0.0
    for i in range(q.shape[0]):
        qm = max(qm, abs(q[i]))
    dm = _scale_q(Q)
    return 1.0 + hb, 1.0 + qm, dm, dm / colsq


@_jit
def forward_batch(Q, q, R_all, b, h, mg, cols, coef, colsq, act, guess, tol, reg, iters, restrict_from, cycle_from,
                  add_fraction, support, x, y, lam, status, solves):  # pragma: no cover
    """:func:`solve_element` for every element (from :func:`separable_guess` where ``guess``,
    else from ``act``), its status into ``status (B,)`` and its number of solves into ``solves (B,)``;
    inputs with a leading dimension of 1 are shared by the batch. The scales, ``r = [b; h_general]``
    and the bound rows' values ``h / coef`` are formed here, per element."""
    p = b.shape[1]
    mb = cols.shape[0]
    r_all = np.empty(p + mg)
    bval = np.empty(mb)
    for e in range(q.shape[0]):
        Qe = Q[e if Q.shape[0] > 1 else 0]
        Re = R_all[e if R_all.shape[0] > 1 else 0]
        scale_p, scale_d, sq, rho = _scales(Qe, q[e], h[e], b[e], colsq[e if colsq.shape[0] > 1 else 0])
        r_all[:p] = b[e]
        r_all[p:] = h[e, :mg]
        for j in range(mb):
            bval[j] = h[e, mg + j] / coef[j]
        if guess:
            separable_guess(Qe, q[e], Re[0] if p else q[e], b[e, 0] if p else 0.0, p, mg, cols, coef, bval, sq, act[e])
        status[e] = solve_element(
            Qe, q[e], Re, r_all, mg, h[e], cols, coef, bval, scale_p, scale_d, rho, sq, act[e], tol, reg, iters,
            restrict_from, cycle_from, add_fraction, support[e if support.shape[0] > 1 else 0], x[e], y[e], lam[e],
            solves[e:e + 1])


@_jit
def adjoint_batch(Q, R_all, mg, cols, coef, colsq, act, reg, g, dx, dy, dlam, ok):  # pragma: no cover
    """:func:`adjoint_element` for every element (leading dimension 1: shared)."""
    for e in range(g.shape[0]):
        Qe = Q[e if Q.shape[0] > 1 else 0]
        sq = _scale_q(Qe)
        ok[e] = adjoint_element(
            Qe, R_all[e if R_all.shape[0] > 1 else 0], mg, cols, coef, sq / colsq[e if colsq.shape[0] > 1 else 0], sq,
            act[e], reg, g[e], dx[e], dy[e], dlam[e])
