"""Cardinality / minimum-position portfolios (SCIP MIQP, HiGHS MILP) against brute-force enumeration of
the supports with Clarabel, on 8 S&P 500 stocks and 8 Fama-French industries."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest

from gradfolio.allocation.classical.cardinality import CardinalityPortfolio
from gradfolio.errors import ConfigError, InfeasibleError

TIGHT = dict(tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)


def brute_force(R: np.ndarray, k: int, x: float, u: float, objective: str, beta: float = 0.95) -> np.ndarray:
    """Best portfolio over every support of at most k names (continuous problem on each, Clarabel)."""
    T, N = R.shape
    S = np.cov(R.T)
    S = S / np.diag(S).mean()
    best, best_w = np.inf, None
    for size in range(1, k + 1):
        for support in itertools.combinations(range(N), size):
            idx = list(support)
            w = cp.Variable(size)
            cons = [cp.sum(w) == 1, w >= x, w <= u]
            if objective == "variance":
                obj = cp.quad_form(w, cp.psd_wrap(S[np.ix_(idx, idx)]))
            else:
                a, v = cp.Variable(), cp.Variable(T)
                scale = 1.0 / np.abs(R).mean()
                cons += [v >= 0, v >= -(R[:, idx] * scale) @ w - a]
                obj = a + cp.sum(v) / (T * (1 - beta))
            prob = cp.Problem(cp.Minimize(obj), cons)
            prob.solve(solver="CLARABEL", **TIGHT)
            if prob.status == "optimal" and prob.value < best - 1e-12:
                best, best_w = prob.value, np.zeros(N)
                best_w[idx] = w.value
    return best_w


@pytest.mark.parametrize(("objective", "k", "x", "u"), [("variance", 3, 0.1, 1.0), ("cvar", 3, 0.15, 0.6)])
def test_matches_brute_force(windows, ff_windows, objective: str, k: int, x: float, u: float) -> None:
    Xs, _ = windows(252, ends=(2000, 6000))
    Xf, _ = ff_windows(120, ends=(300, 819))
    for X in (Xs[..., :8], Xf[..., :8]):
        w = CardinalityPortfolio(max_assets=k, min_weight=x, max_weight=u, objective=objective)(X)
        assert w.shape == (2, 8)
        for b in range(2):
            held = w[b] > 0
            assert int(held.sum()) <= k and float(w[b][held].min()) >= x - 1e-7 and float(w[b].max()) <= u + 1e-7
            ref = brute_force(X[b, 0].numpy(), k, x, u, objective)
            np.testing.assert_allclose(w[b].numpy(), ref, atol=1e-5)


def test_cardinality_binds(windows) -> None:
    X, _ = windows(252, ends=(2000,))
    X = X[..., :8]
    free = CardinalityPortfolio(max_assets=8)(X)
    tight = CardinalityPortfolio(max_assets=2, covariance="ledoit_wolf")(X)
    assert int((free > 1e-6).sum()) > 2 and int((tight > 0).sum()) == 2


def test_infeasible_and_config_errors(windows) -> None:
    X, _ = windows(60, ends=(2000, 6000))
    with pytest.raises(InfeasibleError, match="max_assets=2 names of at most max_weight=0.4") as err:
        CardinalityPortfolio(max_assets=2, max_weight=0.4)(X[..., :8])
    assert err.value.rows == [0, 1]
    with pytest.raises(ConfigError, match="max_assets"):
        CardinalityPortfolio(max_assets=0)
    with pytest.raises(ConfigError, match="min_weight"):
        CardinalityPortfolio(min_weight=1.5)
    with pytest.raises(ConfigError, match="beta"):
        CardinalityPortfolio(objective="cvar", beta=1.0)
