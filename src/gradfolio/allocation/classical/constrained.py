"""General linear constraints in the classical portfolios' conic problems (Clarabel batches).

A classical portfolio given ``constraints=PortfolioConstraints(...)`` drops its default
``sum w = 1, w >= 0`` rows and takes the compiled rows ``A w = b, G w <= h`` of the spec
instead (:meth:`~gradfolio.solvers.PortfolioConstraints.compile`; the leverage lift's auxiliary
``t >= |w|`` becomes extra variables after the problem's own), in the same sparse standard form
as its risk rows: one :class:`~gradfolio.solvers.conic.ConicBatch` per group of windows, solved
by Clarabel.

A maximum-ratio portfolio (Sharpe, Sortino, Calmar) is solved in ``y = k w`` (Charnes–Cooper,
``k > 0``): its row ``(mu - r_f)'y = 1`` stays, and every constraint row is homogenized with one
more variable ``k``: ``A y - b k = 0``, ``G y - h k <= 0``, ``k >= 0``; then ``w = y / k``. The
ratio needs the budget ``sum w = 1`` (so that ``r_f = r_f sum w`` homogenizes too).

The weights are the solver's, not clipped or rescaled: a bound of 0.30 is met to the solver's
feasibility tolerance (``1e-10``; ~1e-10 measured on the bundled data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from gradfolio.errors import ConfigError, InfeasibleError
from gradfolio.registry import format_errors
from gradfolio.solvers.conic import ConicBatch, Pattern, solve_batch
from gradfolio.solvers.constraints import CompiledConstraints, PortfolioConstraints


def as_constraints(value: PortfolioConstraints | Mapping[str, Any] | None, who: str) -> PortfolioConstraints | None:
    """``value`` as :class:`PortfolioConstraints` (a mapping of its fields is validated, as a config gives it)."""
    if value is None or isinstance(value, PortfolioConstraints):
        return value
    try:
        return TypeAdapter(PortfolioConstraints).validate_python(value)
    except ValidationError as exc:
        raise ConfigError(f"{format_errors(exc, 'constraints')} (for {who}); see gradfolio.solvers.PortfolioConstraints.") from None


def check_spec(
    constraints: PortfolioConstraints | Mapping[str, Any] | None, who: str, ratio: bool = False
) -> PortfolioConstraints | None:
    """``constraints`` (a mapping is validated) if a classical portfolio can apply them; :class:`ConfigError` otherwise.

    Refused: a turnover limit (a classical portfolio is allocated without previous weights) and,
    for a maximum-ratio portfolio (``ratio``), a budget other than 1.
    """
    constraints = as_constraints(constraints, who)
    if constraints is None:
        return None
    if constraints.turnover is not None:
        raise ConfigError(
            f"constraints.turnover={constraints.turnover} for {who}: a classical portfolio is allocated without "
            "previous weights; drop turnover (costs penalize trading in a backtest: backtest.cost_bps)."
        )
    if ratio and constraints.budget != 1.0:
        raise ConfigError(
            f"constraints.budget={constraints.budget} for {who}: a maximum-ratio portfolio is fully invested; "
            "use budget 1."
        )
    return constraints


def _rows_of(M: np.ndarray, r0: int, col_map: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nonzeros of a dense ``M (p, n_vars)`` as COO parts at row ``r0``, columns through ``col_map``."""
    r, c = np.nonzero(M)
    return r0 + r, col_map[c], M[r, c]


def constrain(batch: ConicBatch, compiled: CompiledConstraints, keep: np.ndarray, ratio: bool) -> ConicBatch:
    """``batch`` with the rows where ``keep`` is false dropped and ``compiled``'s rows added.

    Parameters
    ----------
    batch
        A portfolio's problems ``(B windows)``, variables ``x = [w (N), own...]``.
    compiled
        The spec's rows for ``x_c = [w (N), t...]`` (see :meth:`PortfolioConstraints.compile`).
    keep
        Bool ``(m,)``: the rows of ``batch`` to keep (its risk rows, a ratio's normalization row).
    ratio
        Homogenize the added rows with a last variable ``k >= 0`` (see the module docstring).

    Returns
    -------
    The new batch: variables ``[w, own..., t..., (k)]``; rows: kept equalities, the spec's
    equalities, kept inequalities, the spec's inequalities, (``-k <= 0``).
    """
    B = len(batch)
    (m, n), N = batch.A.shape, compiled.n_assets
    n_aux = compiled.n_vars - N
    n_new = n + n_aux + int(ratio)
    col_map = np.concatenate([np.arange(N), n + np.arange(n_aux)])
    k = n_new - 1
    rows, cols, vals = batch.A.rows, batch.A.cols, batch.A_values  # CSC order, consistent
    kept_eq = np.nonzero(keep[: batch.m_eq])[0]
    kept_in = batch.m_eq + np.nonzero(keep[batch.m_eq :])[0]
    new_row = np.full(m, -1)
    p, g = compiled.A.shape[0], compiled.G.shape[0]
    new_row[kept_eq] = np.arange(kept_eq.size)
    r_in = kept_eq.size + p
    new_row[kept_in] = r_in + np.arange(kept_in.size)
    r_g = r_in + kept_in.size
    m_new = r_g + g + int(ratio)
    mask = new_row[rows] >= 0
    parts = [(new_row[rows[mask]], cols[mask], vals[:, mask])]
    b = np.zeros((B, m_new))
    b[:, new_row[kept_eq]] = batch.b[:, kept_eq]
    b[:, new_row[kept_in]] = batch.b[:, kept_in]
    parts.append(_rows_of(compiled.A, kept_eq.size, col_map))
    parts.append(_rows_of(compiled.G, r_g, col_map))
    if ratio:
        for r0, rhs in ((kept_eq.size, compiled.b), (r_g, compiled.h0)):
            nz = np.nonzero(rhs)[0]
            parts.append((r0 + nz, np.full(nz.size, k), -rhs[nz]))
        parts.append((np.array([m_new - 1]), np.array([k]), np.array([-1.0])))
    else:
        b[:, kept_eq.size : kept_eq.size + p] = compiled.b
        b[:, r_g : r_g + g] = compiled.h0
    A = Pattern(np.concatenate([r for r, _, _ in parts]), np.concatenate([c for _, c, _ in parts]), (m_new, n_new))
    values = np.concatenate([np.broadcast_to(v, (B, v.shape[-1])) for _, _, v in parts], axis=1)
    P = P_values = None
    if batch.P is not None:
        P, P_values = Pattern(batch.P.rows, batch.P.cols, (n_new, n_new)), batch.P_values
    q = np.concatenate([batch.q, np.zeros((B, n_new - n))], axis=1)
    return ConicBatch(q=q, A=A, A_values=values, b=b, m_eq=kept_eq.size + p, P=P, P_values=P_values)


def quadratic_batch(Q: np.ndarray, excess: np.ndarray | None = None) -> ConicBatch:
    """``min 1/2 x'Q x`` for windows ``Q (B, N, N)``, with the ratio row ``excess'x = 1`` when given.

    No other rows: :func:`constrain` adds the spec's (``keep`` all rows).
    """
    B, N, _ = Q.shape
    iu = np.triu_indices(N)
    P = Pattern(iu[0], iu[1], (N, N))
    if excess is None:
        A, values, b = Pattern(np.zeros(0, np.int64), np.zeros(0, np.int64), (0, N)), np.zeros((B, 0)), np.zeros((B, 0))
        m_eq = 0
    else:
        A, values, b, m_eq = Pattern(np.zeros(N, np.int64), np.arange(N), (1, N)), excess, np.ones((B, 1)), 1
    return ConicBatch(q=np.zeros((B, N)), A=A, A_values=values, b=b, m_eq=m_eq, P=P, P_values=Q[:, iu[0], iu[1]])


def constrained_weights(x: np.ndarray, N: int, ratio: bool) -> np.ndarray:
    """Weights ``(B, N)`` from the solutions of :func:`constrain`'s problems (``y / k`` for a ratio)."""
    return x[:, :N] / x[:, -1:] if ratio else x[:, :N].copy()


def solve_all(batch: ConicBatch, who: str, offset: int, tol: float, windows_per_solve: int = 1) -> tuple[np.ndarray, list[int]]:
    """Solutions ``(B, n)`` of every window (NaN rows where infeasible) and the infeasible windows' indices."""
    try:
        return solve_batch(batch, who, offset, tol, windows_per_solve, infeasible_error=True), []
    except InfeasibleError as exc:
        rows = list(exc.rows or [])
    n = batch.A.shape[1]
    out = np.full((len(batch), n), np.nan)
    feasible = [j for j in range(len(batch)) if offset + j not in rows]
    for j in feasible:  # the rest one by one (rare: an infeasible window)
        out[j] = solve_batch(_subset(batch, j), who, offset + j, tol, 1, infeasible_error=True)[0]
    return out, rows


def _subset(batch: ConicBatch, j: int) -> ConicBatch:
    """Window ``j`` of ``batch`` alone."""
    sub = object.__new__(ConicBatch)
    sub.q, sub.b, sub.m_eq, sub.A, sub.P = batch.q[j : j + 1], batch.b[j : j + 1], batch.m_eq, batch.A, batch.P
    sub.n_exp = batch.n_exp
    sub.A_values = batch.A_values[j : j + 1]
    sub.P_values = None if batch.P is None else batch.P_values[j : j + 1]
    return sub


def raise_infeasible(rows: list[int], who: str, constraints: PortfolioConstraints) -> None:
    """One :class:`InfeasibleError` naming every window (batch index) whose problem has no solution."""
    if rows:
        listed = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise InfeasibleError(
            f"{who}: no portfolio satisfies {constraints.describe()} in batch element{'s' if len(rows) > 1 else ''} "
            f"{listed} (Clarabel proves the window's problem infeasible, e.g. no admissible portfolio has a mean "
            "above risk_free); relax the constraints or use a minimum-risk portfolio.",
            rows=rows,
        )


__all__ = ["as_constraints", "check_spec", "constrain", "quadratic_batch", "constrained_weights", "solve_all", "raise_infeasible"]
