"""The standard normal CDF ``N(x)`` and density ``phi(x)`` as piecewise polynomials, for compiled kernels.

Libm's ``erf`` costs ~20 ns per call from compiled code on the project's CPU (torch's vectorized
``erf`` ~5 ns); the book revaluation of :mod:`gradfolio.hedging._book_kernels` needs two ``N`` and
one ``phi`` per live option and night. Here both are tables of polynomials: ``[-L, 0]`` cut into
:data:`PIECES` intervals of width :data:`WIDTH`, on each the degree-:data:`DEGREE` Chebyshev
interpolant of the function (computed from :func:`math.erfc` and :func:`math.exp` when the tables
are first asked for, not typed in), stored as monomial coefficients in the interval's local
variable ``t in [-1, 1]`` and evaluated by Estrin's scheme. The other half line follows by symmetry
(``N(x) = 1 - N(-x)``, ``phi(x) = phi(-x)``), and beyond ``|x| = L`` the argument is clamped:
``N(-9) = 1.1e-19`` and ``phi(9) = 1.0e-18`` are below the float64 resolution of the sums they
enter. Measured against ``mpmath`` (``tests/hedging/test_compiled.py``): ``|error| <= 3e-16`` for
``N`` (SciPy's ``ndtr``: 1.3e-16) and ``<= 5e-16`` for ``phi``, over the whole real line; NaN gives
NaN.

The kernels of :mod:`gradfolio.hedging._book_kernels` inline these functions and constants, and
Numba's on-disk cache (``cache=True``) is keyed on the file that defines a kernel only: after
editing this file, delete ``src/gradfolio/hedging/__pycache__/_book_kernels.*.nb[ci]`` (or touch
``_book_kernels.py``) so that the kernels are compiled again.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit

#: Half-width of the tabulated range ``[-L, L]``.
L = 9.0
#: Width of each interval.
WIDTH = 0.125
#: Degree of each interval's polynomial.
DEGREE = 9
#: Number of intervals on ``[-L, 0]``.
PIECES = int(round(L / WIDTH))


def _table(f) -> np.ndarray:
    """``(PIECES, DEGREE + 1)`` monomial coefficients, highest power first, of ``f``'s Chebyshev
    interpolant on each interval of ``[-L, 0]`` in the local variable ``t in [-1, 1]``."""
    k = np.arange(DEGREE + 1)
    nodes = np.cos(np.pi * (k + 0.5) / (DEGREE + 1))
    rows = []
    for i in range(PIECES):
        x = -L + i * WIDTH + (nodes + 1.0) * (WIDTH / 2.0)
        cheb = np.polynomial.chebyshev.chebfit(nodes, np.array([f(float(v)) for v in x]), DEGREE)
        rows.append(np.polynomial.chebyshev.cheb2poly(cheb)[::-1])
    return np.ascontiguousarray(rows, dtype=np.float64)


@functools.cache
def tables() -> tuple[np.ndarray, np.ndarray]:
    """The coefficient tables of ``N`` and ``phi``, each ``(PIECES, DEGREE + 1)`` float64."""
    inv_sqrt_2pi = 1.0 / math.sqrt(2.0 * math.pi)
    cdf = _table(lambda v: 0.5 * math.erfc(-v / math.sqrt(2.0)))
    pdf = _table(lambda v: inv_sqrt_2pi * math.exp(-0.5 * v * v))
    return cdf, pdf


_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}
"""LLVM fast-math flags of the kernels: reassociation and fused multiply-adds, but not the
no-NaN / no-infinity assumptions."""


@njit(inline="always", fastmath=_FAST, cache=True, error_model="numpy")
def _locate(x: float) -> tuple[int, float]:
    """The interval ``i`` of ``-|x|`` (clamped to ``[-L, 0]``) and the local variable ``t in [-1, 1]``;
    a NaN ``x`` gives row 0 (never an index outside the table) and ``t = NaN``, so a NaN result."""
    u = (-abs(x) + L) * (1.0 / WIDTH)
    u = u if u > 0.0 else 0.0  # beyond -L (and NaN): the first interval's left end
    i = min(int(u), PIECES - 1)
    t = 2.0 * (u - i) - 1.0
    return i, (t if x == x else x)


@njit(inline="always", fastmath=_FAST, cache=True, error_model="numpy")
def _poly(tab: np.ndarray, i: int, t: float) -> float:
    """Row ``i`` of ``tab`` at ``t`` (Estrin's scheme, degree 9: four dependent multiply-adds instead of nine)."""
    t2 = t * t
    t4 = t2 * t2
    c = tab[i]
    low = (c[9] + c[8] * t) + t2 * (c[7] + c[6] * t)
    mid = (c[5] + c[4] * t) + t2 * (c[3] + c[2] * t)
    return low + t4 * (mid + t4 * (c[1] + c[0] * t))


@njit(inline="always", fastmath=_FAST, cache=True, error_model="numpy")
def ndtr(cdf: np.ndarray, x: float) -> float:
    """``N(x)`` from the table ``cdf`` of :func:`tables`."""
    i, t = _locate(x)
    n = _poly(cdf, i, t)
    return n if x <= 0.0 else 1.0 - n


@njit(inline="always", fastmath=_FAST, cache=True, error_model="numpy")
def ndtr_npdf(cdf: np.ndarray, pdf: np.ndarray, x: float) -> tuple[float, float]:
    """``(N(x), phi(x))`` from the tables of :func:`tables`, locating ``x`` once."""
    i, t = _locate(x)
    n = _poly(cdf, i, t)
    return (n if x <= 0.0 else 1.0 - n), _poly(pdf, i, t)


@njit(inline="always", fastmath=_FAST, cache=True, error_model="numpy")
def npdf(pdf: np.ndarray, x: float) -> float:
    """``phi(x)`` from the table ``pdf`` of :func:`tables`."""
    i, t = _locate(x)
    return _poly(pdf, i, t)


__all__ = ["DEGREE", "L", "PIECES", "WIDTH", "ndtr", "ndtr_npdf", "npdf", "tables"]
