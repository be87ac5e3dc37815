"""Compiled overnight revaluation of an option book, path by path, and of the day's hedging option (Numba, CPU).

:meth:`OptionBook.revalue <gradfolio.hedging.book.OptionBook.revalue>` in torch makes about
twenty passes over ``(paths, slots)`` temporaries per book and night; here each path's slots are
read once, valued in registers and reduced to the path's five sums, with ``N`` and ``phi`` from
the polynomial tables of :mod:`gradfolio.hedging._normal` instead of libm's ``erf`` and ``exp``.
The kernel releases the GIL and values the rows ``p0 .. p1 - 1``; the caller splits the paths among
its own threads (Numba's OpenMP threads, spinning between parallel regions, slowed torch's
operations between them tenfold on a 2-core machine). A slot with no
position is skipped (about 47% of client slots with Poisson(1) orders), which changes no sum.
The arithmetic is :meth:`OptionBook.revalue`'s, with sums in another order and fused
multiply-adds: results agree to rounding, not bit for bit; a zero vol or spot gives NaN or infinity
as in torch (NumPy's error model), not an exception.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np
from numba import njit

from gradfolio.hedging._normal import _FAST, ndtr, ndtr_npdf


@njit(fastmath=_FAST, cache=True, nogil=True, error_model="numpy")
def revalue(qty: np.ndarray, strike: np.ndarray, log_strike: np.ndarray, first: int, start: int, day: int,
            spot: np.ndarray, log_spot: np.ndarray, vol: np.ndarray, vol_col: int, tau: np.ndarray,
            sqrt_tau: np.ndarray, drift: np.ndarray, disc_q: np.ndarray, disc_r: np.ndarray, size: float,
            cdf: np.ndarray, pdf: np.ndarray, out: np.ndarray, accumulate: bool, open_slot: int, open_qty: np.ndarray,
            open_strike: np.ndarray, p0: int, p1: int) -> None:
    """Value one book's slots ``start .. start + k - 1`` on ``day`` and write (or add) its sums, for paths ``p0 .. p1 - 1``.

    ``qty, strike, log_strike (P, C)`` the book; ``first`` the slot expiring on ``day`` (worth its
    payoff), ``-1`` if none; ``spot, log_spot (P, D)`` read at column ``day``; ``vol (P, m)`` the
    implied vol, at column ``vol_col`` for every slot (one vol per path and day) or, with
    ``vol_col = -1``, at column ``j - start`` for slot ``j`` (one per option, ``m = k``);
    ``tau, sqrt_tau, drift = (r - q) tau, disc_q = e^{-q tau}, disc_r = e^{-r tau}`` ``(k,)`` per
    live slot (every ``tau > 0``); ``cdf, pdf`` the tables of :func:`gradfolio.hedging._normal.tables`.
    ``out (5, P)``: value on ``day`` of the positions held the day before (the first ``k - 1`` live
    slots and ``first``), value, delta, gamma and vega (per vol point) of the ``k`` live slots, times
    quantity and ``size``; with ``accumulate`` added to ``out`` instead of written. With
    ``open_slot >= 0`` each path first opens its position in that slot (:meth:`OptionBook.open
    <gradfolio.hedging.book.OptionBook.open>`: ``open_qty (P,)`` contracts added, strike
    ``open_strike (P,)`` and its log set), while its row is in cache anyway: a separate pass over that
    column of the row-major book costs a cache miss per path.
    """
    k = tau.shape[0]
    per_day = vol_col >= 0
    for p in range(p0, p1):
        if open_slot >= 0:
            qty[p, open_slot] += open_qty[p]
            strike[p, open_slot] = open_strike[p]
            log_strike[p, open_slot] = np.log(open_strike[p])
        s, ls = spot[p, day], log_spot[p, day]
        held = 0.0
        last = 0.0
        delta = 0.0
        gamma = 0.0
        vega = 0.0
        sig = vol[p, vol_col] if per_day else 1.0
        for i in range(k):
            j = start + i
            q = qty[p, j]
            if q == 0.0:  # no position: adds nothing to any sum
                continue
            if not per_day:
                sig = vol[p, i]
            vs = sig * sqrt_tau[i]
            inv_vs = 1.0 / vs
            d1 = (ls - log_strike[p, j] + drift[i] + 0.5 * sig * sig * tau[i]) * inv_vs
            n1, phi = ndtr_npdf(cdf, pdf, d1)
            n1 *= disc_q[i]
            price = n1 * s - strike[p, j] * disc_r[i] * ndtr(cdf, d1 - vs)
            if i < k - 1:
                held += q * price
            else:
                last = q * price
            delta += q * n1
            qp = q * phi * disc_q[i]
            gamma += qp * inv_vs
            vega += qp * sqrt_tau[i]
        value_held = size * held
        if first >= 0:
            value_held += size * qty[p, first] * max(s - strike[p, first], 0.0)
        row = (value_held, size * (held + last), size * delta, size * gamma / s, size * s * vega / 100.0)
        for r in range(5):
            out[r, p] = out[r, p] + row[r] if accumulate else row[r]


@njit(fastmath=_FAST, cache=True, nogil=True, error_model="numpy")
def atm_call(spot: np.ndarray, day: int, vol: np.ndarray, tau: float, rate: float, dividend: float, cdf: np.ndarray,
             pdf: np.ndarray, out: np.ndarray, p0: int, p1: int) -> None:
    """Price, delta, gamma and vega (per vol point) of one at-the-money call (strike = spot) per path,
    for paths ``p0 .. p1 - 1``: ``spot (P, D)`` read at column ``day``, ``vol (P,)``, ``tau > 0`` in
    years -> ``out (4, P)``.

    :func:`~gradfolio.hedging.blackscholes.live_greeks_unchecked` at ``strike = spot`` (``log(S/K) = 0``)."""
    sqrt_tau = np.sqrt(tau)
    disc_q, disc_r = np.exp(-dividend * tau), np.exp(-rate * tau)
    for p in range(p0, p1):
        s, sig = spot[p, day], vol[p]
        vs = sig * sqrt_tau
        d1 = (rate - dividend + 0.5 * sig * sig) * tau / vs
        n1, phi = ndtr_npdf(cdf, pdf, d1)
        delta = disc_q * n1
        out[0, p] = s * delta - s * disc_r * ndtr(cdf, d1 - vs)
        out[1, p] = delta
        out[2, p] = disc_q * phi / (s * vs)
        out[3, p] = s * disc_q * sqrt_tau * phi / 100.0


_MIN_ROWS = 2048
"""Fewest paths per thread: below it a thread's start-up (~50 us) costs more than its share of the work."""


@functools.cache
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    """A pool of ``threads - 1`` workers for process ``pid`` (the calling thread takes one part itself;
    a forked child, which inherits the pool but not its threads, gets its own)."""
    return ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="gradfolio-book")


def run(args: tuple, n_paths: int, threads: int, kernel=revalue) -> None:
    """``kernel`` (:func:`revalue` or :func:`atm_call`) with ``args`` (everything before ``p0``) over
    ``n_paths`` paths, split into ``threads`` contiguous parts of at least :data:`_MIN_ROWS` paths,
    one per thread."""
    parts = max(1, min(int(threads), n_paths // _MIN_ROWS))
    if parts == 1:
        kernel(*args, 0, n_paths)
        return
    bounds = [n_paths * i // parts for i in range(parts + 1)]
    futures = [_pool(parts, os.getpid()).submit(kernel, *args, bounds[i], bounds[i + 1]) for i in range(1, parts)]
    try:
        kernel(*args, bounds[0], bounds[1])
    finally:  # every part has finished (or failed) before this returns or raises: nothing writes on afterwards
        wait(futures)
    for f in futures:
        f.result()


def warm() -> None:
    """Compile (or load from Numba's cache) the kernel for float64 and float32 books now: ``make
    setup`` runs this once after installing, so the first compiled night of a session does not pay
    the few seconds of compilation."""
    from gradfolio.hedging import _normal

    cdf, pdf = _normal.tables()
    tau = np.array([0.01, 0.02])
    for dtype in (np.float64, np.float32):
        books = [np.ones((1, 3), dtype) for _ in range(3)]
        market = np.ones((1, 2), dtype)
        revalue(*books, 0, 1, 1, market, market * 0, market * 0.2, 1, tau, np.sqrt(tau), tau * 0, tau * 0 + 1,
                tau * 0 + 1, 100.0, cdf, pdf, np.zeros((5, 1), dtype), False, 1, market[0], market[0], 0, 1)
        atm_call(market, 1, market[0] * 0.2, 0.1, 0.0, 0.0, cdf, pdf, np.zeros((4, 1), dtype), 0, 1)


__all__ = ["atm_call", "revalue", "run", "warm"]
