"""Downside portfolios: their batched standard forms and stacked Clarabel solves (``conic_portfolio.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from gradfolio.allocation.classical import (
    MaximumCalmar,
    MaximumSortino,
    MinimumCVaR,
    MinimumDrawdown,
)
from gradfolio.errors import SolverError
from gradfolio.solvers import conic

#: Eight 252-day windows spread over the bundled data.
SPREAD = (1500, 2000, 3000, 4500, 5200, 6000, 7000, 8312)

MODELS = {
    "min_cvar": MinimumCVaR,
    "min_cvar_90": lambda: MinimumCVaR(beta=0.9),
    "min_drawdown": MinimumDrawdown,
    "max_calmar": MaximumCalmar,
    "max_calmar_rf": lambda: MaximumCalmar(risk_free=1e-4),
    "max_sortino_mean": lambda: MaximumSortino(target=None),
    "max_sortino_zero": MaximumSortino,
    "max_sortino_rf": lambda: MaximumSortino(target=1e-4, risk_free=2e-4),
}


# --- the per-window construction with scipy.sparse.bmat, as it was before batching ---------------


def _drawdown_G(R: np.ndarray) -> sp.csc_matrix:
    L, N = R.shape
    eye_L = sp.identity(L, format="csc")
    diff = eye_L - sp.eye(L, k=-1, format="csc")
    ones = sp.csc_matrix(np.ones((L, 1)))
    return sp.bmat(
        [
            [sp.csc_matrix(-R), -diff, None],
            [None, -eye_L, None],
            [None, eye_L, -ones],
            [-sp.identity(N, format="csc"), None, sp.csc_matrix((N, 1))],
        ],
        format="csc",
    )


def reference(model, R: np.ndarray):
    """``(P or None, q, A_eq, G)`` of one window ``R (L, N)``, built block by block."""
    L, N = R.shape
    eye_L = sp.identity(L, format="csc")
    if isinstance(model, MinimumCVaR):
        q = np.concatenate([np.zeros(N), [1.0], np.full(L, 1.0 / (L * (1.0 - model.beta)))])
        G = sp.bmat(
            [
                [sp.csc_matrix(-R), sp.csc_matrix(-np.ones((L, 1))), -eye_L],
                [None, sp.csc_matrix((L, 1)), -eye_L],
                [-sp.identity(N, format="csc"), sp.csc_matrix((N, 1)), sp.csc_matrix((N, L))],
            ],
            format="csc",
        )
        return None, q, np.concatenate([np.ones(N), np.zeros(L + 1)]), G
    q = np.concatenate([np.zeros(N + L), [1.0]])
    if isinstance(model, MinimumDrawdown):
        return None, q, np.concatenate([np.ones(N), np.zeros(L + 1)]), _drawdown_G(R)
    excess = R.mean(axis=0) - model.risk_free
    if isinstance(model, MaximumCalmar):
        return None, q, np.concatenate([excess, np.zeros(L + 1)]), _drawdown_G(R)
    below = R - (R.mean(axis=0) if model.target is None else model.target)
    G = sp.bmat(
        [
            [sp.csc_matrix(-below), -eye_L],
            [None, -eye_L],
            [-sp.identity(N, format="csc"), sp.csc_matrix((N, L))],
        ],
        format="csc",
    )
    P = sp.bmat([[sp.csc_matrix((N, N)), None], [None, eye_L]], format="csc")
    return P, np.zeros(N + L), np.concatenate([excess, np.zeros(L)]), G


@pytest.mark.parametrize("case", sorted(MODELS))
def test_batched_standard_form_equals_blockwise_construction(windows, case: str) -> None:
    model = MODELS[case]()
    X, _ = windows(40, ends=(2000, 6000, 8312))
    data = X[:, 0].numpy()
    batch = model.build(data)
    for b, R in enumerate(data):
        P_ref, q_ref, a_ref, G_ref = reference(model, R)
        P, q, A, rhs, cones = batch.stacked(b, b + 1)
        np.testing.assert_array_equal(A.toarray(), np.vstack([a_ref[None], G_ref.toarray()]))
        np.testing.assert_array_equal(q, q_ref)
        np.testing.assert_array_equal(rhs, np.concatenate([[1.0], np.zeros(G_ref.shape[0])]))
        P_expected = np.zeros(P.shape) if P_ref is None else P_ref.toarray()
        np.testing.assert_array_equal(P.toarray(), P_expected)
        assert [c.__class__.__name__ for c in cones] == ["ZeroConeT", "NonnegativeConeT"]
    # all three windows stacked: block diagonal, cones repeated per window
    P, q, A, rhs, cones = batch.stacked(0, 3)
    blocks = [batch.stacked(b, b + 1) for b in range(3)]
    np.testing.assert_array_equal(A.toarray(), sp.block_diag([blk[2] for blk in blocks]).toarray())
    np.testing.assert_array_equal(P.toarray(), sp.block_diag([blk[0] for blk in blocks]).toarray())
    np.testing.assert_array_equal(q, np.concatenate([blk[1] for blk in blocks]))
    np.testing.assert_array_equal(rhs, np.concatenate([blk[3] for blk in blocks]))
    assert len(cones) == 6


# --- stacked solves ------------------------------------------------------------------------------

#: Measured max |dw| between a stacked solve and one window per call on SPREAD: below 7e-9
#: (Sortino 6e-9, CVaR 2e-9), max Calmar 1.6e-7 (its homogenized scale 1/mu differs between
#: windows, and Clarabel's tolerances apply to the whole stacked problem).
STACKED_ATOL = {"min_cvar": 1e-7, "min_drawdown": 1e-7, "max_calmar": 1e-6, "max_sortino_mean": 1e-7}


@pytest.mark.parametrize("case", sorted(STACKED_ATOL))
def test_stacked_solve_equals_one_window_per_call(windows, case: str) -> None:
    X, _ = windows(252, ends=SPREAD)
    model = MODELS[case]()
    assert model.windows_per_solve == 1
    one_by_one = model(X)
    for per_solve in (3, len(SPREAD)):  # groups 3 + 3 + 2, then one call for all windows
        model.windows_per_solve = per_solve
        torch.testing.assert_close(model(X), one_by_one, rtol=0, atol=STACKED_ATOL[case])
    # the defaults: each window alone equals the same window in a batch, to the bit
    model.windows_per_solve = 1
    for b in (0, 5):
        torch.testing.assert_close(model(X[b : b + 1])[0], one_by_one[b], rtol=0, atol=0)


class _BrokenCVaR(MinimumCVaR):
    """Minimum CVaR whose windows starting with a return of 0.123 ask for ``sum w = -1`` (infeasible)."""

    def build(self, R: np.ndarray):
        batch = super().build(R)
        batch.b[R[:, 0, 0] == 0.123, 0] = -1.0
        return batch


@pytest.mark.parametrize(("per_solve", "build_all"), [(1, True), (4, True), (4, False), (8, True)])
def test_failing_window_is_named(windows, per_solve: int, build_all: bool) -> None:
    X, _ = windows(60, ends=SPREAD)
    X[5, 0, 0, 0] = 0.123
    model = _BrokenCVaR()
    model.windows_per_solve = per_solve
    if not build_all:
        model.max_build_nonzeros = 1  # one window per build: the batch offsets are used
    message = r"_BrokenCVaR: Clarabel stopped with status \w*Infeasible\w* at batch element 5;"
    with pytest.raises(SolverError, match=message):
        model(X)
    X[5, 0, 0, 0] = 0.0
    model(X)  # and solves once that window is repaired


def test_failed_stacked_solve_falls_back_to_one_window_per_call(windows, monkeypatch) -> None:
    X, _ = windows(60, ends=SPREAD)
    model = MaximumCalmar()
    expected = model(X)
    calls = []
    real = conic.clarabel_solve

    def stacked_fails(P, q, A, b, cones, tol):
        calls.append(len(cones) // 2)
        if len(cones) > 2:  # more than one window: report a numerical failure
            return "NumericalError", np.full(q.shape, np.nan)
        return real(P, q, A, b, cones, tol)

    monkeypatch.setattr(conic, "clarabel_solve", stacked_fails)
    model.windows_per_solve = 3
    torch.testing.assert_close(model(X), expected, rtol=0, atol=0)
    assert calls == [3, 1, 1, 1, 3, 1, 1, 1, 2, 1, 1]
