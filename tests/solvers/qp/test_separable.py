"""The active-set method's first guess: the exact solution of the separable (diagonal) problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradfolio.solvers.qp.active_set as active_set
from gradfolio.solvers import PortfolioConstraints, QPSettings, solve_qp
from gradfolio.solvers.qp.separable import separable_active_set, separable_solution
from gradfolio.solvers.qp.standard_form import StandardForm


def bound_problem(gen, B, n, budget):
    """Diagonal QPs with bounds (some infinite, one duplicated, one variable fixed) and at most one
    equality ``a'x = b`` (``a`` with both signs and a zero), feasible at a known point."""
    d = 0.1 + torch.rand(B, n, generator=gen, dtype=torch.float64)
    q = torch.randn(B, n, generator=gen, dtype=torch.float64)
    lo = -torch.rand(n, generator=gen, dtype=torch.float64)
    hi = torch.rand(n, generator=gen, dtype=torch.float64)
    lo[1], hi[2] = -torch.inf, torch.inf
    lo[3] = hi[3] = 0.2  # fixed
    rows = [(-1.0, i, -lo[i]) for i in range(n) if torch.isfinite(lo[i])]
    rows += [(1.0, i, hi[i]) for i in range(n) if torch.isfinite(hi[i])]
    rows.append((-1.0, 0, -lo[0] - 0.1))  # a looser duplicate lower bound on variable 0
    G = torch.zeros(len(rows), n, dtype=torch.float64)
    for r, (c, i, _) in enumerate(rows):
        G[r, i] = c
    h = torch.tensor([v for *_, v in rows], dtype=torch.float64).expand(B, -1)
    x0 = torch.where(torch.isfinite(lo), lo, hi - 1.0) + 0.3 * torch.rand(n, generator=gen, dtype=torch.float64)
    x0 = torch.minimum(x0, hi)
    if budget:
        a = torch.randn(1, n, generator=gen, dtype=torch.float64)
        a[0, 4] = 0.0
        b = (a @ x0).expand(B, 1)
    else:
        a, b = torch.zeros(0, n, dtype=torch.float64), torch.zeros(B, 0, dtype=torch.float64)
    return torch.diag_embed(d), q, G, h, a, b


@pytest.mark.parametrize("budget", [True, False])
def test_separable_solution_matches_clarabel(gen, refs, budget):
    Q, q, G, h, A, b = bound_problem(gen, 6, 9, budget)
    x = separable_solution(StandardForm.build(Q, q, G, h, A, b))
    for i in range(6):
        ref = refs.qp(Q[i].numpy(), q[i].numpy(), G.numpy(), h[i].numpy(), A.numpy(), b[i].numpy())
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)


def count_solves(monkeypatch):
    calls = []
    solve_on = active_set.solve_on
    monkeypatch.setattr(active_set, "solve_on", lambda *a: calls.append(1) or solve_on(*a))
    return calls


@pytest.mark.parametrize("budget", [True, False])
def test_diagonal_problem_is_solved_by_the_first_solve(gen, refs, monkeypatch, budget):
    # With a diagonal Q the separable problem is the problem: its active set is the solution's.
    Q, q, G, h, A, b = bound_problem(gen, 6, 9, budget)
    calls = count_solves(monkeypatch)
    x = solve_qp(Q, q, G, h, A, b, QPSettings(compiled=False))  # the batched method's solves are counted
    assert len(calls) == 1
    ref = refs.qp(Q[0].numpy(), q[0].numpy(), G.numpy(), h[0].numpy(), A.numpy(), b[0].numpy())
    np.testing.assert_allclose(x[0].numpy(), ref, atol=1e-7)


def test_general_rows_start_inactive_and_several_equalities_give_no_guess(gen):
    Q, q, G, h, A, b = bound_problem(gen, 2, 5, True)
    bounds_only = separable_active_set(StandardForm.build(Q, q, G, h, A, b))
    assert bounds_only.shape == h.shape
    general = torch.cat([torch.ones(1, 5, dtype=torch.float64), G])  # a group row first
    act = separable_active_set(StandardForm.build(Q, q, general, torch.cat([h[:, :1], h], 1), A, b))
    assert not act[:, 0].any() and torch.equal(act[:, 1:], bounds_only)
    assert separable_active_set(StandardForm.build(Q, q, G, h, torch.cat([A, A]), torch.cat([b, b], 1))) is None


def test_long_only_portfolios_need_fewer_solves_from_the_guess(gen, refs, monkeypatch):
    # Random covariances, as in benchmarks/bench_solvers.py: most assets end at zero, and the
    # separable problem finds most of them (6 solves from the empty set, 4 from the guess).
    n = 30
    S = refs.cov(gen, 16, n, 1e3)
    mu = 0.01 * torch.randn(16, n, generator=gen, dtype=torch.float64)
    c = PortfolioConstraints(long_only=True).compile(n).tensors()
    args = (5.0 * S + 0.01 * torch.eye(n, dtype=torch.float64), -mu, c["G"], c["h0"], c["A"], c["b"])
    counts = []
    for guess in (False, True):
        calls = count_solves(monkeypatch)
        if not guess:
            monkeypatch.setattr(active_set, "separable_active_set", lambda form: None)
        x = solve_qp(*args, QPSettings(compiled=False))  # the batched method's solves are counted
        counts.append(len(calls))
        monkeypatch.undo()
    assert counts[1] < counts[0]
    ref = refs.portfolio(PortfolioConstraints(long_only=True), mu[0].numpy(), S[0].numpy(), 5.0, 0.01)
    np.testing.assert_allclose(x[0].numpy(), ref, atol=1e-7)
