"""Batches of convex problems in sparse standard form, solved by Clarabel.

The back end for batches of sparse LPs/QPs with many scenario constraints, such as the
downside-risk portfolios of :mod:`gradfolio.allocation.classical.downside` (see there for why
they are not sent to the dense batched torch solver :func:`gradfolio.solvers.solve_qp`).

Every window of a batch has the same sparsity structure (only the values depend on the
returns), so a batch is stored as one window's pattern (COO index arrays) and a ``(B, nnz)``
array of values, built from the returns of all windows at once. A group of ``c`` windows is
handed to Clarabel as one block-diagonal problem, assembled directly in CSC form from the
pattern (no per-window sparse-matrix work): variables, constraint rows and cones are those of
the windows one after the other, and the solution is split back per window. Structural zeros
(a return of exactly zero) are dropped by Clarabel (``input_sparse_dropzeros``), so a window
solved alone gets the same problem, bit for bit, as one built by ``scipy.sparse``.

By default each Clarabel call takes one window (``windows_per_solve = 1``): stacking windows
was measured slower (see :mod:`gradfolio.allocation.classical.downside`).

Clarabel reports one status for a stacked problem. When it is not ``Solved``/``AlmostSolved``,
the windows of that group only are solved again one by one, so that a failing window is named
(:class:`~gradfolio.errors.SolverError`) and the other windows keep their own solutions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import clarabel
import numpy as np
import scipy.sparse as sp

from gradfolio.errors import InfeasibleError, SolverError

#: Clarabel statuses whose solution is used.
OK_STATUS = ("Solved", "AlmostSolved")
#: Clarabel statuses that prove a window's problem infeasible.
INFEASIBLE_STATUS = ("PrimalInfeasible", "AlmostPrimalInfeasible")


@dataclass(frozen=True)
class Pattern:
    """The sparsity structure of one window's ``(m, n)`` matrix, shared by the windows of a batch.

    ``rows`` and ``cols`` are COO indices (no duplicates) in any order; they are sorted once
    into CSC order (``order``: the permutation to apply to the values, ``indptr``: column
    starts) so that a block-diagonal matrix of any number of windows is assembled by offsets.
    """

    rows: np.ndarray
    cols: np.ndarray
    shape: tuple[int, int]
    order: np.ndarray = field(init=False, repr=False)
    indptr: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        order = np.lexsort((self.rows, self.cols))
        rows, cols = self.rows[order], self.cols[order]
        if rows.size > 1 and bool(((np.diff(rows) == 0) & (np.diff(cols) == 0)).any()):
            raise ValueError("Pattern: duplicated (row, col) entries")
        object.__setattr__(self, "order", order)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "cols", cols)
        object.__setattr__(self, "indptr", np.searchsorted(cols, np.arange(self.shape[1] + 1)))

    @property
    def nnz(self) -> int:
        return int(self.rows.size)

    def block_diag(self, values: np.ndarray) -> sp.csc_matrix:
        """Block-diagonal CSC matrix of ``c`` windows from their values ``(c, nnz)`` in CSC order."""
        c = values.shape[0]
        (m, n), k = self.shape, self.nnz
        blocks = np.arange(c)[:, None]
        indices = (self.rows[None] + m * blocks).ravel()
        indptr = np.append((self.indptr[:-1][None] + k * blocks).ravel(), c * k)
        return sp.csc_matrix((values.ravel(), indices, indptr), shape=(c * m, c * n))


class ConicBatch:
    """``B`` problems ``min 1/2 x'P_b x + q_b'x`` s.t. ``A_b x + s = b_b``, ``s`` in the cones.

    The first ``m_eq`` rows of each ``A_b`` are equalities (zero cone), the others are
    ``G x <= h`` rows (nonnegative cone) but the last ``3 n_exp``: ``n_exp`` exponential cones
    (Clarabel's ``{(u, v, z): v exp(u / v) <= z, v > 0}``, e.g. ``log(y) >= u`` as ``(u, 1, y)``). ``A_b`` (and ``P_b``, upper triangle, ``None`` for an
    LP) share one :class:`Pattern`; their values are given per window.

    Parameters
    ----------
    q
        Linear costs, shape ``(B, n)``.
    A, A_values
        Constraint pattern, shape ``(m, n)``, and values ``(B, A.nnz)`` in the pattern's order.
    b
        Right-hand sides, shape ``(B, m)``.
    m_eq
        Number of equality rows (the first rows of ``A``).
    P, P_values
        Optional upper-triangular quadratic-cost pattern ``(n, n)`` and values ``(B, P.nnz)``.
    n_exp
        Exponential cones in the last ``3 n_exp`` rows (default none).
    """

    def __init__(
        self,
        q: np.ndarray,
        A: Pattern,
        A_values: np.ndarray,
        b: np.ndarray,
        m_eq: int,
        P: Pattern | None = None,
        P_values: np.ndarray | None = None,
        n_exp: int = 0,
    ) -> None:
        if P is not None and bool((P.rows > P.cols).any()):
            raise ValueError("ConicBatch: P must be given by its upper triangle")
        self.q, self.b, self.m_eq, self.A, self.P, self.n_exp = q, b, m_eq, A, P, n_exp
        self.A_values = A_values[:, A.order]  # CSC order, once for the whole batch
        self.P_values = None if P is None else P_values[:, P.order]

    def __len__(self) -> int:
        return self.q.shape[0]

    @property
    def nnz(self) -> int:
        """Stored nonzeros of one window (``A`` and ``P``)."""
        return self.A.nnz + (0 if self.P is None else self.P.nnz)

    def stacked(self, start: int, stop: int):
        """Clarabel's arguments ``(P, q, A, b, cones)`` for windows ``start:stop`` stacked."""
        c = stop - start
        (m, n), m_eq = self.A.shape, self.m_eq
        if self.P is None:
            P = sp.csc_matrix((c * n, c * n))
        else:
            P = self.P.block_diag(self.P_values[start:stop])
        A = self.A.block_diag(self.A_values[start:stop])
        cones = [clarabel.ZeroConeT(m_eq), clarabel.NonnegativeConeT(m - m_eq - 3 * self.n_exp)]
        cones = (cones + [clarabel.ExponentialConeT()] * self.n_exp) * c
        return P, self.q[start:stop].ravel(), A, self.b[start:stop].ravel(), cones


def clarabel_solve(P, q, A, b, cones, tol: float) -> tuple[str, np.ndarray]:
    """One Clarabel call with gradfolio's settings; returns ``(status, x)``."""
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tol
    settings.tol_ktratio = 1e-8
    settings.input_sparse_dropzeros = True
    solution = clarabel.DefaultSolver(P, q, A, b, cones, settings).solve()
    return str(solution.status), np.asarray(solution.x)


def solve_batch(
    batch: ConicBatch, who: str, offset: int = 0, tol: float = 1e-10, windows_per_solve: int = 1,
    infeasible_error: bool = False,
) -> np.ndarray:
    """Solve every window of ``batch``, ``windows_per_solve`` windows per Clarabel call.

    Parameters
    ----------
    batch
        The problems.
    who
        Name of the portfolio, for the messages.
    offset
        Batch index of the first window of ``batch`` (for the messages).
    tol
        Clarabel's gap and feasibility tolerances.
    windows_per_solve
        Windows stacked into one block-diagonal Clarabel problem.
    infeasible_error
        Report windows that Clarabel proves infeasible by one :class:`InfeasibleError` (after
        every window was tried) instead of a :class:`SolverError` at the first.

    Returns
    -------
    Array of shape ``(B, n)``: the primal solutions.

    Raises
    ------
    SolverError
        A window's problem did not reach ``Solved``/``AlmostSolved`` when solved alone (its
        batch index is named); tried after its stacked group did not.
    InfeasibleError
        With ``infeasible_error``: Clarabel proved some windows' problems infeasible; their
        batch indices (``offset`` added) are its ``rows``.
    """
    n = batch.A.shape[1]
    out = np.empty((len(batch), n))
    infeasible: list[int] = []
    for start in range(0, len(batch), windows_per_solve):
        stop = min(start + windows_per_solve, len(batch))
        status, x = clarabel_solve(*batch.stacked(start, stop), tol)
        if status in OK_STATUS:
            out[start:stop] = x.reshape(stop - start, n)
            continue
        for j in range(start, stop):  # name the failing window: solve this group one by one
            if stop - start > 1:
                status, x = clarabel_solve(*batch.stacked(j, j + 1), tol)
            if infeasible_error and status in INFEASIBLE_STATUS:
                infeasible.append(offset + j)
                continue
            if status not in OK_STATUS:
                raise SolverError(
                    f"{who}: Clarabel stopped with status {status} at batch element {offset + j}; "
                    "check that window's returns (constant or duplicated assets) or use a longer lookback."
                )
            out[j] = x
    if infeasible:
        listed = ", ".join(map(str, infeasible[:5])) + (", ..." if len(infeasible) > 5 else "")
        raise InfeasibleError(
            f"{who}: Clarabel proves the problem infeasible at batch element(s) {listed}; relax the constraints.",
            rows=infeasible,
        )
    return out


__all__ = ["INFEASIBLE_STATUS", "OK_STATUS", "ConicBatch", "Pattern", "clarabel_solve", "solve_batch"]
