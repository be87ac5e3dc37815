"""Batches of sparse conic problems solved by Clarabel (``solvers/conic.py``), against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from gradfolio.errors import SolverError
from gradfolio.solvers.conic import ConicBatch, Pattern, clarabel_solve, solve_batch


def test_pattern_block_diag_and_duplicates() -> None:
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((3, 5, 4)) * (rng.random((5, 4)) < 0.5)
    rows, cols = np.nonzero(np.abs(dense).sum(axis=0))
    perm = rng.permutation(rows.size)  # any order of the entries
    pattern = Pattern(rows[perm], cols[perm], (5, 4))
    values = dense[:, rows[perm], cols[perm]][:, pattern.order]
    np.testing.assert_array_equal(pattern.block_diag(values).toarray(), sp.block_diag(list(dense)).toarray())
    with pytest.raises(ValueError, match="duplicated"):
        Pattern(np.array([0, 1, 0]), np.array([2, 0, 2]), (2, 3))


def _simplex_rows(a: np.ndarray, lower: float) -> tuple[Pattern, np.ndarray, np.ndarray]:
    """``a_b'x = 1`` (row 0) and ``x >= lower`` (rows 1..n, as ``-x <= -lower``) for ``a (B, n)``."""
    B, n = a.shape
    rows = np.concatenate([np.zeros(n, dtype=int), 1 + np.arange(n)])
    cols = np.concatenate([np.arange(n), np.arange(n)])
    values = np.concatenate([a, -np.ones((B, n))], axis=1)
    b = np.concatenate([np.ones((B, 1)), np.full((B, n), -lower)], axis=1)
    return Pattern(rows, cols, (n + 1, n)), values, b


def _lp(B: int = 7, n: int = 5, seed: int = 3) -> tuple[ConicBatch, np.ndarray, np.ndarray]:
    """LPs ``min q_b'x s.t. a_b'x = 1, x >= 0`` with their own ``q_b``, ``a_b > 0``: ``x = e_k / a_k``."""
    rng = np.random.default_rng(seed)
    q, a = rng.normal(0.3, 1.0, (B, n)), rng.uniform(0.5, 2.0, (B, n))
    A, values, b = _simplex_rows(a, 0.0)
    return ConicBatch(q=q, A=A, A_values=values, b=b, m_eq=1), q, a


def test_lp_batch_matches_the_closed_form() -> None:
    batch, q, a = _lp()
    x = solve_batch(batch, "lp", tol=1e-9)
    k = np.argmin(q / a, axis=1)
    expected = np.zeros_like(q)
    expected[np.arange(len(k)), k] = 1.0 / a[np.arange(len(k)), k]
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-7)


def test_diagonal_qp_batch_matches_the_closed_form() -> None:
    """``min 1/2 sum d_i x_i^2 + q'x s.t. sum x = 1, x >= -10`` (bounds slack): ``x = (l - q) / d``."""
    rng = np.random.default_rng(5)
    B, n = 6, 4
    d, q = rng.uniform(0.5, 3.0, (B, n)), rng.normal(0.1, 0.5, (B, n))
    A, values, b = _simplex_rows(np.ones((B, n)), -10.0)
    P = Pattern(np.arange(n), np.arange(n), (n, n))
    batch = ConicBatch(q=q, A=A, A_values=values, b=b, m_eq=1, P=P, P_values=d)
    lam = (1.0 + (q / d).sum(axis=1, keepdims=True)) / (1.0 / d).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(solve_batch(batch, "qp"), (lam - q) / d, rtol=0, atol=1e-8)
    assert batch.nnz == 2 * n + n


def test_stacked_solve_equals_one_problem_per_call() -> None:
    batch, _, _ = _lp()
    one_by_one = solve_batch(batch, "lp")
    for per_solve in (3, len(batch)):  # groups 3 + 3 + 1, then one call for the whole batch
        np.testing.assert_allclose(solve_batch(batch, "lp", windows_per_solve=per_solve), one_by_one, rtol=0, atol=1e-8)
    P, q, A, b, cones = batch.stacked(2, 5)
    assert P.shape == (15, 15) and P.nnz == 0 and A.shape == (18, 15) and q.shape == (15,) and b.shape == (18,)
    assert [c.__class__.__name__ for c in cones] == ["ZeroConeT", "NonnegativeConeT"] * 3
    status, x = clarabel_solve(*batch.stacked(2, 3), 1e-10)
    assert status == "Solved"
    np.testing.assert_array_equal(x, one_by_one[2])


@pytest.mark.parametrize("per_solve", [1, 2, 7])
def test_infeasible_problem_is_named_with_the_offset(per_solve: int) -> None:
    batch, _, _ = _lp()
    batch.b[4, 0] = -1.0  # a_4'x = -1 with a_4 > 0 and x >= 0: infeasible
    message = r"my_lp: Clarabel stopped with status \w*Infeasible\w* at batch element 14;"
    with pytest.raises(SolverError, match=message):
        solve_batch(batch, "my_lp", offset=10, windows_per_solve=per_solve)


def test_quadratic_cost_must_be_upper_triangular() -> None:
    batch, q, _ = _lp(B=2, n=3)
    lower = Pattern(np.array([0, 1]), np.array([0, 0]), (3, 3))
    with pytest.raises(ValueError, match="upper triangle"):
        ConicBatch(q=q, A=batch.A, A_values=np.ones((2, batch.A.nnz)), b=batch.b, m_eq=1, P=lower,
                   P_values=np.ones((2, 2)))
