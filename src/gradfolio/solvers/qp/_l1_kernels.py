"""Numba kernels of :mod:`gradfolio.solvers.qp.l1_active_set` (imported on first use).

One element per call of :func:`solve_element` / :func:`adjoint_element`; the ``*_batch``
functions loop over a batch. Float64 arrays; shapes: ``n`` assets, ``p`` equalities and ``mg``
general rows stacked in ``R (p + mg, n)`` with right-hand sides ``rr (p + mg,)`` (``R w = rr`` for
the first ``p``, ``R w <= rr`` for the rest), per-asset bounds ``lo, hi (n,)`` (``+-inf`` for
none), the leverage limit ``L`` and the turnover limit ``T`` (``inf`` for none), the previous
weights ``c (n,)``.

The working set of an element:

- ``kind (n,)``: :data:`FREE`, or fixed :data:`AT_LO` / :data:`AT_HI` (a bound),
  :data:`AT_ZERO` (the kink of ``|w_i|``), :data:`AT_PREV` (the kink of ``|w_i - c_i|``);
- ``sgn (2, n)``: the signs of ``w_i`` and ``w_i - c_i`` a free asset keeps (``+-1``), the
  coefficients of the leverage and turnover rows;
- ``gact (mg,)``: the active general rows; ``on (2,)``: whether the leverage and the turnover
  rows are active (``sum_i sgn[0, i] w_i = L`` on the free assets, less the fixed ones' ``|w_i|``).
"""

from __future__ import annotations

import math

import numpy as np

from gradfolio.solvers.qp._kernels import _cho_solve, _cholesky, _jit

SOLVED, UNSOLVED, OUTSIDE = 0, 1, 2
#: :func:`primal_element`'s status where ``c`` is not a feasible start (internal).
NO_START = 3
FREE, AT_LO, AT_HI, AT_ZERO, AT_PREV = 0, 1, 2, 3, 4


@_jit
def _fixed_value(kind, lo, hi, c):  # pragma: no cover - compiled
    """The value of a fixed asset of ``kind``."""
    if kind == AT_LO:
        return lo
    if kind == AT_HI:
        return hi
    if kind == AT_ZERO:
        return 0.0
    return c


@_jit
def _scratch(n, nr):  # pragma: no cover - compiled
    """Work arrays of one element's systems (``n`` assets, ``nr`` rows at most): ``F, rows, C, d,
    M, X, Sc, z, nu`` of :func:`_system`, :func:`_solve` and :func:`_kkt`."""
    return (np.zeros(n, np.int64), np.zeros(nr, np.int64), np.zeros((nr, n)), np.zeros(nr), np.zeros((n, n)),
            np.zeros((n, nr)), np.zeros((nr, nr)), np.zeros((max(n, nr), 1)), np.zeros((nr, 1)))


@_jit
def _rho(Q, R):  # pragma: no cover - compiled
    """The augmented-Lagrangian weight of :func:`_system` (``M = Q_FF + rho C'C``), as the compiled
    kernels' ``scale_q / colsq``: ``max(1, max |Q_ii|)`` over the largest squared column of the
    rows (the leverage and turnover rows add at most 2): ``M`` is then positive definite where
    ``Q`` is singular but the active rows pin its null space (a factor model with ``alpha = 0``)."""
    scale_q, colsq = 1.0, 1.0
    for i in range(Q.shape[0]):
        scale_q = max(scale_q, abs(Q[i, i]))
        v = 2.0
        for a in range(R.shape[0]):
            v += R[a, i] * R[a, i]
        colsq = max(colsq, v)
    return scale_q / colsq


@_jit
def _system(Q, q, c, lo, hi, R, rr, p, mg, L, T, kind, sgn, gact, on, x, F, rows, C, d, M, X, Sc, rho, reg):
    # pragma: no cover - compiled
    """Form and factor the equality-constrained problem of the working set: the free assets
    ``F[:k]``, the fixed ones' values into ``x``, the rows ``C (r, k) w_F = d (r,)`` (``rows``: their
    index in ``R``, ``p + mg`` for leverage, ``p + mg + 1`` for turnover), the Cholesky factor of
    ``M = Q_FF + rho C'C + reg scale_q I`` (a second try with ``1e-8 scale_q`` more; ``scale_q =
    max(1, max |Q_ii|)``), ``X = M^-1 C'`` and the factor of the Schur complement ``Sc = C X``
    shifted by ``reg (1 + max |Sc|)`` (the shifts of :mod:`gradfolio.solvers.qp.compiled`: they make
    dependent rows solvable; the KKT check uses the unshifted residuals). Returns ``(k, r)``;
    ``r = -1`` where a factorization fails."""
    n = q.shape[0]
    k = 0
    for i in range(n):
        if kind[i] == FREE:
            F[k] = i
            k += 1
            x[i] = 0.0
        else:
            x[i] = _fixed_value(kind[i], lo[i], hi[i], c[i])
    r = 0
    for a in range(p + mg):
        if a < p or gact[a - p]:
            v = rr[a]
            for i in range(n):
                if kind[i] != FREE:
                    v -= R[a, i] * x[i]
            for j in range(k):
                C[r, j] = R[a, F[j]]
            d[r] = v
            rows[r] = a
            r += 1
    for e in range(2):
        if on[e]:
            v = L if e == 0 else T
            for i in range(n):
                if kind[i] != FREE:
                    v -= abs(x[i]) if e == 0 else abs(x[i] - c[i])
            for j in range(k):
                C[r, j] = sgn[e, F[j]]
                if e == 1:
                    v += sgn[1, F[j]] * c[F[j]]
            d[r] = v
            rows[r] = p + mg + e
            r += 1
    scale_q = 1.0
    for i in range(n):
        scale_q = max(scale_q, abs(Q[i, i]))
    for attempt in range(2):
        for a in range(k):
            for b in range(a + 1):
                v = Q[F[a], F[b]]
                if rho > 0.0:
                    for t in range(r):
                        v += rho * C[t, a] * C[t, b]
                M[a, b] = v
            M[a, a] += reg * scale_q + (1e-8 * scale_q if attempt else 0.0)
        if _cholesky(M, k):
            break
        if attempt:
            return k, -1
    for j in range(k):
        for t in range(r):
            X[j, t] = C[t, j]
    _cho_solve(M, k, X, r)
    smax = 0.0
    for a in range(r):
        for b in range(a + 1):
            v = 0.0
            for j in range(k):
                v += C[a, j] * X[j, b]
            Sc[a, b] = v
            smax = max(smax, abs(v))
    for a in range(r):
        Sc[a, a] += reg * (1.0 + smax)
    if not _cholesky(Sc, r):
        return k, -1
    return k, r


@_jit
def _kkt(F, k, r, C, d, M, X, Sc, z, nu, out):  # pragma: no cover - compiled
    """With the factors of :func:`_system`: ``M u + C' nu = z[:k]``, ``C u = d`` (``u`` into
    ``out[F[:k]]``, ``nu (r, 1)``), with two steps of iterative refinement of ``C u = d`` (the
    shift of ``Sc`` leaves ``C u - d = shift nu``); ``z``: scratch of ``max(k, r)`` rows."""
    _cho_solve(M, k, z, 1)
    for a in range(r):
        v = -d[a]
        for j in range(k):
            v += C[a, j] * z[j, 0]
        nu[a, 0] = v
    _cho_solve(Sc, r, nu, 1)
    for j in range(k):
        v = z[j, 0]
        for a in range(r):
            v -= X[j, a] * nu[a, 0]
        out[F[j]] = v
    for _ in range(2):
        for a in range(r):
            v = -d[a]
            for j in range(k):
                v += C[a, j] * out[F[j]]
            z[a, 0] = v
        _cho_solve(Sc, r, z, 1)
        for a in range(r):
            nu[a, 0] += z[a, 0]
        for j in range(k):
            v = out[F[j]]
            for a in range(r):
                v -= X[j, a] * z[a, 0]
            out[F[j]] = v


@_jit
def _solve(Q, q, x, F, k, r, C, d, M, X, Sc, rho, z, nu):  # pragma: no cover - compiled
    """With the factors of :func:`_system`: the free assets' values into ``x`` and the rows'
    multipliers into ``nu[:r]`` (``M w_F + C' nu = -(q_F + Q_FX x_X) + rho C'd``, ``C w_F = d``;
    :func:`_kkt`)."""
    n = q.shape[0]
    for j in range(k):
        i = F[j]
        v = -q[i]
        for t in range(n):
            if x[t] != 0.0:
                v -= Q[i, t] * x[t]
        if rho > 0.0:
            for a in range(r):
                v += rho * C[a, j] * d[a]
        z[j, 0] = v
    _kkt(F, k, r, C, d, M, X, Sc, z, nu, x)


@_jit
def _interval(i, lo, hi, c, sgn, on):  # pragma: no cover - compiled
    """The interval a free asset keeps under its signs: its bounds, and ``w_i >= 0`` or ``<= 0``
    (``w_i - c_i`` likewise) where the leverage (turnover) row is active; with the kinds of its
    ends."""
    a, b, ka, kb = lo[i], hi[i], AT_LO, AT_HI
    if on[0]:
        if sgn[0, i] > 0.0:
            if 0.0 > a:
                a, ka = 0.0, AT_ZERO
        elif 0.0 < b:
            b, kb = 0.0, AT_ZERO
    if on[1]:
        if sgn[1, i] > 0.0:
            if c[i] > a:
                a, ka = c[i], AT_PREV
        elif c[i] < b:
            b, kb = c[i], AT_PREV
    return a, b, ka, kb


@_jit
def _directions(v, g, lam_l, lam_t, ci, lo, hi):  # pragma: no cover - compiled
    """Directional derivatives of the Lagrangian for a fixed asset at ``v`` (``g``: the gradient of
    the objective plus the equality and general rows' terms): moving up, moving down (``inf``
    where a bound forbids the direction)."""
    up, down = math.inf, math.inf
    if v < hi:
        up = g + lam_l * (1.0 if v >= 0.0 else -1.0) + lam_t * (1.0 if v >= ci else -1.0)
    if v > lo:
        down = -g + lam_l * (1.0 if v <= 0.0 else -1.0) + lam_t * (1.0 if v <= ci else -1.0)
    return up, down


@_jit
def _free_in(i, v, up, kind, sgn, ci):  # pragma: no cover - compiled
    """Free asset ``i`` from its fixed value ``v``, moving up (or down): the signs it takes."""
    kind[i] = FREE
    if up:
        sgn[0, i] = 1.0 if v >= 0.0 else -1.0
        sgn[1, i] = 1.0 if v >= ci else -1.0
    else:
        sgn[0, i] = -1.0 if v <= 0.0 else 1.0
        sgn[1, i] = -1.0 if v <= ci else 1.0


@_jit
def _state_hash(kind, sgn, gact, on):  # pragma: no cover - compiled
    """An FNV-1a hash of the working set (the cycle test)."""
    h = np.uint64(1469598103934665603)
    prime = np.uint64(1099511628211)
    for i in range(kind.shape[0]):
        v = kind[i] * 4 + (2 if sgn[0, i] > 0.0 else 0) + (1 if sgn[1, i] > 0.0 else 0)
        h = (h ^ np.uint64(v)) * prime
    for g in range(gact.shape[0]):
        h = (h ^ np.uint64(2 if gact[g] else 1)) * prime
    h = (h ^ np.uint64(5 + (1 if on[0] else 0) + (2 if on[1] else 0))) * prime
    return h


@_jit
def _signs_from(e, x, c, dx, sgn):  # pragma: no cover - compiled
    """The signs of row ``e`` (0: ``w``, 1: ``w - c``) as it becomes active: those of ``x`` (of ``x - c``),
    at zero the direction ``dx`` is going (``+1`` where it is zero too)."""
    for i in range(x.shape[0]):
        v = x[i] if e == 0 else x[i] - c[i]
        sgn[e, i] = 1.0 if (v > 0.0 or (v == 0.0 and dx[i] >= 0.0)) else -1.0


@_jit
def _release(p, mg, kind, sgn, gact, on, x, g, lam, c, lo, hi, dtol):  # pragma: no cover - compiled
    """Release the active row or fixed asset (in its direction) with the most negative multiplier or
    directional derivative, if below ``-dtol``; False where there is none."""
    worst, what, where = -dtol, -1, 0
    for gi in range(mg):
        if gact[gi] and lam[p + gi] < worst:
            worst, what, where = lam[p + gi], 0, gi
    for e in range(2):
        if on[e] and lam[p + mg + e] < worst:
            worst, what, where = lam[p + mg + e], 1, e
    for i in range(kind.shape[0]):
        if kind[i] != FREE:
            up, down = _directions(x[i], g[i], lam[p + mg], lam[p + mg + 1], c[i], lo[i], hi[i])
            if min(up, down) < worst:
                worst, what, where = min(up, down), 2 if up <= down else 3, i
    if what == 0:
        gact[where] = False
    elif what == 1:
        on[where] = False
    elif what >= 2:
        _free_in(where, x[where], what == 2, kind, sgn, c[where])
    return what >= 0


@_jit
def _scales(q, c, lo, hi, rr, L, T):  # pragma: no cover - compiled
    """Scales of the KKT check (as the torch method's): primal by the data (``rr``, bounds, ``c``,
    the limits), dual by ``q`` (the caller adds ``|Q x|``)."""
    scale_p, scale_d = 1.0, 1.0
    for a in range(rr.shape[0]):
        scale_p = max(scale_p, abs(rr[a]))
    for i in range(q.shape[0]):
        scale_p = max(scale_p, abs(c[i]))
        if math.isfinite(lo[i]):
            scale_p = max(scale_p, abs(lo[i]))
        if math.isfinite(hi[i]):
            scale_p = max(scale_p, abs(hi[i]))
        scale_d = max(scale_d, abs(q[i]))
    if math.isfinite(L):
        scale_p = max(scale_p, L)
    if math.isfinite(T):
        scale_p = max(scale_p, T)
    return scale_p, scale_d


@_jit
def _evaluate(Q, q, c, lo, hi, R, rr, p, mg, L, T, kind, sgn, gact, on, x, lam, g, rowval):
    # pragma: no cover - compiled
    """The KKT residuals of ``x`` with the multipliers ``lam`` on the working set: ``g (n,)`` gets
    the gradient of the Lagrangian without the leverage and turnover terms, ``rowval (p + mg,)``
    ``R w - rr``. Returns ``(primal, dual, qmax, gross, turn)``: the largest violation of a row,
    bound or sign, the largest stationarity error or wrong-signed multiplier or directional
    derivative, ``max |Q x|``, ``sum |x|`` and ``sum |x - c|``; ``primal = inf`` for a non-finite ``x``."""
    n = q.shape[0]
    lam_l, lam_t = lam[p + mg], lam[p + mg + 1]
    qmax = 0.0
    for i in range(n):
        if not math.isfinite(x[i]):
            return math.inf, math.inf, 0.0, 0.0, 0.0
        w = 0.0
        for t in range(n):
            w += Q[i, t] * x[t]
        qmax = max(qmax, abs(w))
        v = q[i] + w
        for a in range(p + mg):
            v += R[a, i] * lam[a]
        g[i] = v
    primal, dual = 0.0, 0.0
    for a in range(p + mg):
        v = -rr[a]
        for i in range(n):
            v += R[a, i] * x[i]
        rowval[a] = v
        if a < p or gact[a - p]:
            primal = max(primal, abs(v))
        else:
            primal = max(primal, v)
        if a >= p:
            dual = max(dual, -lam[a])
    gross, turn = 0.0, 0.0
    for i in range(n):
        gross += abs(x[i])
        turn += abs(x[i] - c[i])
    for e in range(2):
        v = (gross - L) if e == 0 else (turn - T)
        primal = max(primal, abs(v) if on[e] else v)
        dual = max(dual, -lam[p + mg + e])
    for i in range(n):
        if kind[i] == FREE:
            a, b, _, _ = _interval(i, lo, hi, c, sgn, on)
            primal = max(primal, a - x[i], x[i] - b)
            dual = max(dual, abs(g[i] + lam_l * sgn[0, i] + lam_t * sgn[1, i]))
        else:  # a kink may lie outside the bounds (w_prev past a bound, 0 outside them)
            primal = max(primal, lo[i] - x[i], x[i] - hi[i])
            up, down = _directions(x[i], g[i], lam_l, lam_t, c[i], lo[i], hi[i])
            dual = max(dual, -up, -down)
    return primal, dual, qmax, gross, turn


@_jit
def _abs_root(x, dx, c, limit):  # pragma: no cover - compiled
    """The first ``a`` in ``[0, 1]`` where ``sum_i |x_i + a dx_i - c_i|`` reaches ``limit`` (a convex
    piecewise linear function of ``a``, at most ``limit`` at 0), or 2.0 where it stays below."""
    n = x.shape[0]
    f1 = 0.0
    for i in range(n):
        f1 += abs(x[i] + dx[i] - c[i])
    if f1 <= limit:
        return 2.0
    bp = np.empty(n + 1)
    m = 0
    for i in range(n):
        if dx[i] != 0.0:
            a = -(x[i] - c[i]) / dx[i]
            if 0.0 < a < 1.0:
                bp[m] = a
                m += 1
    bp[m] = 1.0
    m += 1
    bp = np.sort(bp[:m])
    a0 = 0.0
    f0 = 0.0
    for i in range(n):
        f0 += abs(x[i] - c[i])
    for j in range(m):
        a1 = bp[j]
        f = 0.0
        for i in range(n):
            f += abs(x[i] + a1 * dx[i] - c[i])
        if f > limit:
            return a0 + (a1 - a0) * max(0.0, limit - f0) / (f - f0)  # linear on [a0, a1]
        a0, f0 = a1, f
    return 1.0


@_jit
def primal_element(Q, q, c, lo, hi, R, rr, p, mg, L, T, tol, reg, cap, kind, sgn, gact, on, x, lam, used):
    # pragma: no cover - compiled
    """The primal active-set method (Nocedal & Wright, Algorithm 16.3) from the feasible point
    ``x = c``, every asset fixed there: each iteration solves the working set's problem, steps
    towards its solution up to the first blocking constraint (a bound or, where its row is
    active, the kink of a free asset; an inactive general, leverage or turnover row) and adds it;
    at the solution of a working set it releases the row or fixed asset with the most negative
    multiplier or directional derivative, or stops. A blocking row is never in the span of the
    active ones, so every system is nonsingular. Returns the status (:data:`UNSOLVED` after
    ``cap`` solves, :data:`NO_START` where ``c`` is not feasible)."""
    n = q.shape[0]
    nr = p + mg + 2
    F, rows, C, d, M, X, Sc, z, nu = _scratch(n, nr)
    g = np.zeros(n)
    rowval = np.zeros(p + mg)
    xs = np.zeros(n)
    dx = np.zeros(n)
    scale_p, scale_d = _scales(q, c, lo, hi, rr, L, T)
    rho = _rho(Q, R)
    ptol = tol * scale_p
    # The start: x = c, feasible for every row (turnover is zero there).
    for i in range(n):
        x[i] = c[i]
        kind[i] = AT_PREV
        if not (lo[i] - ptol <= c[i] <= hi[i] + ptol):
            return NO_START
    gact[:] = False
    on[:] = False
    lam[:] = 0.0
    primal, _, _, _, _ = _evaluate(Q, q, c, lo, hi, R, rr, p, mg, L, T, kind, sgn, gact, on, x, lam, g, rowval)
    if primal > ptol:
        return NO_START
    zero = np.zeros(n)
    for it in range(cap):
        used[0] = it + 1
        k, r = _system(Q, q, c, lo, hi, R, rr, p, mg, L, T, kind, sgn, gact, on, xs, F, rows, C, d, M, X, Sc, rho, reg)
        if r < 0:
            return OUTSIDE
        _solve(Q, q, xs, F, k, r, C, d, M, X, Sc, rho, z, nu)
        # The step dx = xs - x on the free assets and the first blocking constraint.
        step = 0.0
        for i in range(n):
            dx[i] = xs[i] - x[i] if kind[i] == FREE else 0.0
            step = max(step, abs(dx[i]))
        alpha, what, where = 1.0, -1, 0
        if step > ptol:
            for i in range(n):
                if kind[i] == FREE and dx[i] != 0.0:
                    a, b, ka, kb = _interval(i, lo, hi, c, sgn, on)
                    bound = a if dx[i] < 0.0 else b
                    if math.isfinite(bound):
                        t = max(0.0, (bound - x[i]) / dx[i])
                        if t < alpha:
                            alpha, what, where = t, 0, i
            for gi in range(mg):
                if not gact[gi]:
                    rate, slack = 0.0, rr[p + gi]
                    for i in range(n):
                        rate += R[p + gi, i] * dx[i]
                        slack -= R[p + gi, i] * x[i]
                    if rate > 0.0:
                        t = max(0.0, slack / rate)
                        if t < alpha:
                            alpha, what, where = t, 1, gi
            for e in range(2):
                if not on[e] and math.isfinite(L if e == 0 else T):
                    t = _abs_root(x, dx, c if e == 1 else zero, L if e == 0 else T)
                    if t < alpha:
                        alpha, what, where = t, 2, e
        for i in range(n):
            if kind[i] == FREE:
                x[i] = xs[i] if what < 0 else x[i] + alpha * dx[i]
        if what == 0:
            a, b, ka, kb = _interval(where, lo, hi, c, sgn, on)
            kind[where] = ka if dx[where] < 0.0 else kb
            x[where] = _fixed_value(kind[where], lo[where], hi[where], c[where])
            continue
        if what == 1:
            gact[where] = True
            continue
        if what == 2:
            on[where] = True
            _signs_from(where, x, c, dx, sgn)
            continue
        # At the working set's solution: the multipliers decide.
        lam[:] = 0.0
        for a in range(r):
            lam[rows[a]] = nu[a, 0]
        primal, dual, qmax, _, _ = _evaluate(Q, q, c, lo, hi, R, rr, p, mg, L, T, kind, sgn, gact, on, x, lam, g,
                                             rowval)
        dtol = tol * max(scale_d, 1.0 + qmax)
        if not _release(p, mg, kind, sgn, gact, on, x, g, lam, c, lo, hi, dtol):
            return SOLVED if primal <= ptol and dual <= dtol else UNSOLVED
    return UNSOLVED


@_jit
def pdas_element(Q, q, c, lo, hi, R, rr, p, mg, L, T, tol, reg, iters, kind, sgn, gact, on, x, lam, used):
    # pragma: no cover - compiled
    """The primal-dual active-set method on one element from the working set ``kind, sgn, gact, on``
    (overwritten with the final one); ``x (n,)`` gets the weights, ``lam (p + mg + 2,)`` the
    multipliers (equalities, general rows, leverage, turnover), ``used (1,)`` the number of
    solves. Returns the status (:data:`SOLVED`, :data:`UNSOLVED`: the caller's fallback takes it,
    :data:`OUTSIDE`: a factorization failed)."""
    n = q.shape[0]
    nr = p + mg + 2
    F, rows, C, d, M, X, Sc, z, nu = _scratch(n, nr)
    g = np.zeros(n)
    rowval = np.zeros(p + mg)
    hist = np.zeros(2 * iters, np.uint64)
    zero = np.zeros(n)
    scale_p, scale_d = _scales(q, c, lo, hi, rr, L, T)
    rho = _rho(Q, R)
    cautious, cstart = False, 0
    for it in range(2 * iters):
        used[0] = it + 1
        hist[it] = _state_hash(kind, sgn, gact, on)
        k, r = _system(Q, q, c, lo, hi, R, rr, p, mg, L, T, kind, sgn, gact, on, x, F, rows, C, d, M, X, Sc, rho, reg)
        if r < 0:
            return OUTSIDE
        _solve(Q, q, x, F, k, r, C, d, M, X, Sc, rho, z, nu)
        lam[:] = 0.0
        for a in range(r):
            lam[rows[a]] = nu[a, 0]
        lam_l, lam_t = lam[p + mg], lam[p + mg + 1]
        primal, dual, qmax, gross, turn = _evaluate(Q, q, c, lo, hi, R, rr, p, mg, L, T, kind, sgn, gact, on, x, lam, g,
                                                    rowval)
        if not math.isfinite(primal):
            return UNSOLVED
        dtol = tol * max(scale_d, 1.0 + qmax)
        ptol = tol * scale_p
        if primal <= ptol and dual <= dtol:
            return SOLVED
        # The update.
        if not cautious and it == iters - 1:
            cautious, cstart = True, it + 1
        if cautious:
            # One change: the most negative multiplier or directional derivative, else the worst
            # violation.
            if not _release(p, mg, kind, sgn, gact, on, x, g, lam, c, lo, hi, dtol):
                worst, what, where = ptol, -1, 0
                for gi in range(mg):
                    if not gact[gi] and rowval[p + gi] > worst:
                        worst, what, where = rowval[p + gi], 0, gi
                for e in range(2):
                    v = (gross - L) if e == 0 else (turn - T)
                    if not on[e] and v > worst:
                        worst, what, where = v, 1, e
                for i in range(n):
                    if kind[i] == FREE:
                        a, b, ka, kb = _interval(i, lo, hi, c, sgn, on)
                    else:  # a fixed asset's only violation: a kink outside its bounds
                        a, b, ka, kb = lo[i], hi[i], AT_LO, AT_HI
                    if a - x[i] > worst:
                        worst, what, where = a - x[i], 2, i
                    if x[i] - b > worst:
                        worst, what, where = x[i] - b, 3, i
                if what == 0:
                    gact[where] = True
                elif what == 1:
                    on[where] = True
                    _signs_from(where, x, c, zero, sgn)
                elif what >= 2:
                    if kind[where] == FREE:
                        a, b, ka, kb = _interval(where, lo, hi, c, sgn, on)
                        kind[where] = ka if what == 2 else kb
                    else:
                        kind[where] = AT_LO if what == 2 else AT_HI
                else:
                    return UNSOLVED
        else:
            # All at once (the primal-dual update): release the fixed assets and rows whose
            # multipliers say so, fix the free assets outside their intervals, add violated rows.
            new_on0, new_on1 = on[0], on[1]
            for e in range(2):
                v = (gross - L) if e == 0 else (turn - T)
                if on[e] and lam[p + mg + e] < -dtol:
                    if e == 0:
                        new_on0 = False
                    else:
                        new_on1 = False
                elif not on[e] and v > ptol:
                    if e == 0:
                        new_on0 = True
                    else:
                        new_on1 = True
                    _signs_from(e, x, c, zero, sgn)
            for i in range(n):
                if kind[i] == FREE:
                    a, b, ka, kb = _interval(i, lo, hi, c, sgn, on)
                    if x[i] < a - ptol:
                        kind[i] = ka
                    elif x[i] > b + ptol:
                        kind[i] = kb
                elif x[i] < lo[i] - ptol:  # a kink outside the bounds
                    kind[i] = AT_LO
                elif x[i] > hi[i] + ptol:
                    kind[i] = AT_HI
                else:
                    up, down = _directions(x[i], g[i], lam_l, lam_t, c[i], lo[i], hi[i])
                    if min(up, down) < -dtol:
                        _free_in(i, x[i], up <= down, kind, sgn, c[i])
            for gi in range(mg):
                if gact[gi] and lam[p + gi] < -dtol:
                    gact[gi] = False
                elif not gact[gi] and rowval[p + gi] > ptol:
                    gact[gi] = True
            on[0], on[1] = new_on0, new_on1
        h = _state_hash(kind, sgn, gact, on)
        for t in range(cstart, it + 1):
            if hist[t] == h:
                if cautious:
                    return UNSOLVED
                cautious, cstart = True, it + 1
                break
    return UNSOLVED


@_jit
def solve_element(Q, q, c, lo, hi, R, rr, p, mg, L, T, tol, reg, cap, iters, kind, sgn, gact, on, x, lam, used):
    # pragma: no cover - compiled
    """One element: :func:`primal_element` (at most ``cap`` solves) from ``x = c`` where that is
    feasible. Where it is not (previous weights that drifted past a bound or a group limit), the
    primal method first solves the problem with the limits ``c`` breaks moved out to ``c`` (bounds
    to ``min(lo, c)`` / ``max(hi, c)``, group rows and leverage to ``c``'s value, the equalities'
    right-hand sides to ``c``'s), and :func:`pdas_element` (at most ``2 iters`` solves) starts from
    that working set on the true limits: the two problems differ only in the limits ``c`` breaks,
    so the working set is close. Where a method does not finish, :func:`pdas_element` from every
    asset free. ``used (1,)`` counts all solves."""
    n = q.shape[0]
    st = primal_element(Q, q, c, lo, hi, R, rr, p, mg, L, T, tol, reg, cap, kind, sgn, gact, on, x, lam, used)
    if st == SOLVED:
        return st
    first = used[0]
    warm = False
    if st == NO_START:
        lo2, hi2, rr2 = np.minimum(lo, c), np.maximum(hi, c), rr.copy()
        gross = 0.0
        for i in range(n):
            gross += abs(c[i])
        for a in range(p + mg):
            v = 0.0
            for i in range(n):
                v += R[a, i] * c[i]
            rr2[a] = v if a < p else max(rr[a], v)
        st = primal_element(Q, q, c, lo2, hi2, R, rr2, p, mg, max(L, gross), T, tol, reg, cap, kind, sgn, gact, on,
                            x, lam, used)
        warm = st == SOLVED
        first += used[0]
    if not warm:
        kind[:] = FREE
        sgn[:] = 1.0
        gact[:] = False
        on[:] = False
    st = pdas_element(Q, q, c, lo, hi, R, rr, p, mg, L, T, tol, reg, iters, kind, sgn, gact, on, x, lam, used)
    used[0] += first
    return st


@_jit
def adjoint_element(Q, q, c, lo, hi, R, rr, p, mg, L, T, reg, kind, sgn, gact, on, x, gx, dq, dc):
    # pragma: no cover - compiled
    """The backward pass on the final working set, for the gradient ``gx (n,)`` of the loss
    w.r.t. the weights ``x (n,)``: ``dq (n,)`` (``-u``, where ``[[Q_FF, C'], [C, 0]] [u; v] =
    [gx_F; 0]``, zero on the fixed assets) and ``dc (n,)`` (through the turnover kinks' values
    and the rows' right-hand sides). ``dQ = (dq x' + x dq') / 2`` is formed by the caller.
    Returns False where a factorization fails."""
    n = q.shape[0]
    nr = p + mg + 2
    F, rows, C, d, M, X, Sc, z, nu = _scratch(n, nr)
    xs = np.zeros(n)
    k, r = _system(Q, q, c, lo, hi, R, rr, p, mg, L, T, kind, sgn, gact, on, xs, F, rows, C, d, M, X, Sc, _rho(Q, R), reg)
    if r < 0:
        return False
    # [u; v] = K^-1 [gx_F; 0], then dq = -u.
    for j in range(k):
        z[j, 0] = gx[F[j]]
    d[:] = 0.0
    _kkt(F, k, r, C, d, M, X, Sc, z, nu, dq)
    for i in range(n):
        dq[i] = -dq[i] if kind[i] == FREE else 0.0
    v_t = 0.0
    for a in range(r):
        if rows[a] == p + mg + 1:
            v_t = nu[a, 0]
    for i in range(n):
        if kind[i] == AT_PREV:
            # x_i = c_i: its own gradient, through q~ = q_F + Q_FX x_X (-Q_XF u = Q_XF dq), and through
            # the rows' right-hand sides (d_a = rr_a - R_aX x_X, L - sum |x_X|).
            v = gx[i]
            for t in range(n):
                v += Q[i, t] * dq[t]
            for a in range(r):
                if rows[a] < p + mg:
                    v -= R[rows[a], i] * nu[a, 0]
                elif rows[a] == p + mg:
                    v -= (1.0 if c[i] > 0.0 else (-1.0 if c[i] < 0.0 else 0.0)) * nu[a, 0]
            dc[i] = v
        elif kind[i] == FREE:
            dc[i] = sgn[1, i] * v_t if on[1] else 0.0
        else:
            dv = x[i] - c[i]
            dc[i] = (1.0 if dv > 0.0 else (-1.0 if dv < 0.0 else 0.0)) * v_t if on[1] else 0.0
    return True


@_jit
def forward_batch(Q, q, c, lo, hi, R, rr, p, mg, L, T, tol, reg, cap, iters, kind, sgn, gact, on, x, lam, status, used):
    # pragma: no cover - compiled
    """:func:`solve_element` for every element from the working set given (``Q`` and ``c`` with a
    leading dimension of 1 are shared)."""
    B = q.shape[0]
    for e in range(B):
        status[e] = solve_element(Q[e if Q.shape[0] > 1 else 0], q[e], c[e if c.shape[0] > 1 else 0], lo, hi, R, rr,
                                  p, mg, L, T, tol, reg, cap, iters, kind[e], sgn[e], gact[e], on[e], x[e], lam[e],
                                  used[e:e + 1])


@_jit
def adjoint_batch(Q, q, c, lo, hi, R, rr, p, mg, L, T, reg, kind, sgn, gact, on, x, gx, dq, dc, ok):
    # pragma: no cover - compiled
    """:func:`adjoint_element` for every element."""
    B = q.shape[0]
    for e in range(B):
        ok[e] = adjoint_element(Q[e if Q.shape[0] > 1 else 0], q[e], c[e if c.shape[0] > 1 else 0], lo, hi, R, rr, p,
                                mg, L, T, reg, kind[e], sgn[e], gact[e], on[e], x[e], gx[e], dq[e], dc[e])
