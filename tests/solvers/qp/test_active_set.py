"""The primal-dual active-set method's safeguards: the guarded update for a starved equality and
the hand-over of cycling elements to the interior point."""

from __future__ import annotations

import numpy as np
import torch

import gradfolio.solvers.qp.active_set as active_set
import gradfolio.solvers.qp.solve as qp_solve
from gradfolio.solvers import PortfolioConstraints, QPSettings, solve_qp
from gradfolio.solvers.qp.active_set import next_active_set, starvable
from gradfolio.solvers.qp.standard_form import StandardForm


#: The batched torch method (these tests are about it; float64 CPU batches take the compiled
#: kernels by default).
BATCHED = QPSettings(compiled=False)


def box_budget_form(n, lo, hi, budget=True):
    """``min 1/2 |x|^2 s.t. sum x = 1, lo <= x <= hi`` (bound rows: lower ones, then upper ones)."""
    eye = torch.eye(n, dtype=torch.float64)
    G = torch.cat([-eye, eye])
    h = torch.tensor([-lo] * n + [hi] * n, dtype=torch.float64)[None]
    A = torch.ones(1 if budget else 0, n, dtype=torch.float64)
    b = torch.ones(1, 1 if budget else 0, dtype=torch.float64)
    return StandardForm.build(eye, torch.zeros(1, n, dtype=torch.float64), G, h, A, b)


def rows(lower, upper):
    return torch.tensor([lower + upper])


def test_starvable_only_when_bounds_block_both_directions():
    assert starvable(box_budget_form(3, 0.0, 0.45)).tolist() == [3]
    long_only = PortfolioConstraints(long_only=True).compile(3).tensors()
    form = StandardForm.build(torch.eye(3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
                              long_only["G"], long_only["h0"][None], long_only["A"], long_only["b"][None])
    assert starvable(form) is None  # only lower bounds with a budget of positive weights
    assert starvable(box_budget_form(3, 0.0, 0.45, budget=False)) is None


def test_guarded_update_adds_only_the_most_violated_row():
    # x0 at its upper bound 0.4; the solve gave x1 = 0.8 (above 0.4) and x2 = -0.2 (below 0): the
    # full update fixes all three at 0.4 + 0.4 + 0 != 1, an inconsistent system.
    form = box_budget_form(3, 0.0, 0.4)
    act = rows([0, 0, 0], [1, 0, 0]).bool()
    lam = rows([0.0, 0.0, 0.0], [0.3, 0.0, 0.0]).double()
    x = torch.tensor([[0.4, 0.8, -0.2]], dtype=torch.float64)
    s = form.h - form.Gx(x)
    full = torch.where(act, lam > 0, s < 0)
    assert full.tolist() == rows([0, 0, 1], [1, 1, 0]).bool().tolist()
    new = next_active_set(form, act, lam, s, torch.tensor([False]), starvable(form))
    assert new.tolist() == rows([0, 0, 0], [1, 1, 0]).bool().tolist()


def test_guarded_update_swaps_when_one_row_still_fixes_everything():
    # x0 at its upper bound 0.45, x1 at its lower bound 0: the budget puts x2 at 0.55, above 0.45.
    # Fixing x2 too leaves a'x = 0.9 < 1, so the lower bound of x1 (the only row that lets a'x
    # rise) is released.
    form = box_budget_form(3, 0.0, 0.45)
    act = rows([0, 1, 0], [1, 0, 0]).bool()
    lam = rows([0.0, 0.2, 0.0], [0.3, 0.0, 0.0]).double()
    s = form.h - form.Gx(torch.tensor([[0.45, 0.0, 0.55]], dtype=torch.float64))
    new = next_active_set(form, act, lam, s, torch.tensor([False]), starvable(form))
    assert new.tolist() == rows([0, 0, 0], [1, 0, 1]).bool().tolist()


def test_max_weight_portfolios_are_finished_by_the_active_set_method(refs, monkeypatch):
    # Long-only with max_weight = 0.3 on real covariances: without the guarded update some
    # elements' updates fix every weight (an inconsistent budget) and cycle into the interior point.
    mu, S = refs.sp500(20, 32)
    spec = PortfolioConstraints(long_only=True, max_weight=0.3)
    c = spec.compile(20).tensors()

    def no_interior_point(*args):
        raise AssertionError("the interior point was called")

    monkeypatch.setattr(qp_solve, "interior_point", no_interior_point)
    x = solve_qp(2.0 * S + 0.01 * torch.eye(20, dtype=torch.float64), -mu, c["G"], c["h0"], c["A"], c["b"])
    for i in (0, 13, 31):
        ref = refs.portfolio(spec, mu[i].numpy(), S[i].numpy(), 2.0, 0.01)
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)


def test_cycling_element_goes_to_the_interior_point(gen, refs, monkeypatch, interior_point_calls):
    # Force element 0 to alternate between two active sets: it is found cycling at the first
    # check and solved by the interior point; the others finish in the active-set method.
    n = 12
    S = refs.cov(gen, 4, n, 1e2)
    mu = 0.01 * torch.randn(4, n, generator=gen, dtype=torch.float64)
    c = PortfolioConstraints(long_only=True).compile(n).tensors()
    update = active_set.next_active_set

    def cycle_first(form, act, *args):
        new = update(form, act, *args)
        if new.shape[0] == 4:
            new[0] = False
            new[0, len(tried) % 2] = True
        return new

    tried, handed = [], interior_point_calls
    solve_on = active_set.solve_on
    # The batched method's own cycle check (the compiled kernels have their own, tested in
    # test_compiled.py).
    monkeypatch.setattr(active_set, "next_active_set", cycle_first)
    monkeypatch.setattr(active_set, "solve_on", lambda *a: tried.append(1) or solve_on(*a))
    x = solve_qp(5.0 * S, -mu, c["G"], c["h0"], c["A"], c["b"], BATCHED)
    assert handed == [[0]]
    assert len(tried) == active_set.CYCLE_CHECK_FROM + 1
    for i in range(4):
        ref = refs.portfolio(PortfolioConstraints(long_only=True), mu[i].numpy(), S[i].numpy(), 5.0, 0.0)
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)


def test_batched_budget_row_with_two_sided_bounds_in_a_compacted_batch(gen, refs):
    # A per-element equality row (B, 1, n) with bounds on both sides: the starvation screen keeps
    # one count per element, which must follow the batch as finished elements leave it.
    B, n = active_set.COMPACT_BATCH + 8, 10
    S = refs.cov(gen, B, n, 1e2)
    mu = 0.05 * torch.randn(B, n, generator=gen, dtype=torch.float64)
    spec = PortfolioConstraints(long_only=True, max_weight=0.3)
    c = spec.compile(n).tensors()
    A = c["A"].expand(B, 1, n).clone()
    x = solve_qp(5.0 * S, -mu, c["G"], c["h0"], A, c["b"])
    for i in (0, B - 1):
        ref = refs.portfolio(spec, mu[i].numpy(), S[i].numpy(), 5.0, 0.0)
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)


def test_restricted_update_drops_nonpositive_multipliers_and_adds_only_the_worst_violations():
    # Upper bound of x0 active with a negative multiplier (dropped), of x1 with a positive one
    # (kept); x2, x3, x4 violate their upper bound 0.4 by 0.5, 0.3 and 0.1: with ADD_FRACTION = 0.5
    # only the first two are added (the full update would add all three).
    form = box_budget_form(5, 0.0, 0.4)
    act = rows([0] * 5, [1, 1, 0, 0, 0]).bool()
    lam = rows([0.0] * 5, [-0.2, 0.3, 0.0, 0.0, 0.0]).double()
    s = form.h - form.Gx(torch.tensor([[0.4, 0.4, 0.9, 0.7, 0.5]], dtype=torch.float64))
    assert active_set.ADD_FRACTION == 0.5
    new = next_active_set(form, act, lam, s, torch.tensor([False]), starvable(form), True)
    assert new.tolist() == rows([0] * 5, [0, 1, 1, 1, 0]).bool().tolist()
    assert next_active_set(form, act, lam, s, torch.tensor([False]), starvable(form)).tolist() == rows(
        [0] * 5, [0, 1, 1, 1, 1]).bool().tolist()
    # A finished element keeps its set.
    assert next_active_set(form, act, lam, s, torch.tensor([True]), None, True).tolist() == act.tolist()


def test_group_portfolios_settle_in_the_active_set_method_with_the_restricted_update(
        gen, refs, monkeypatch, interior_point_calls):
    # Max weight and two groups on dense covariances: with the full update throughout, some
    # elements wander between active sets until the cap and go to the interior point; with the
    # restricted update from RESTRICT_FROM on, every element is finished by the active-set method.
    from gradfolio.solvers import Group

    B, n = 32, 30
    S = refs.cov(gen, B, n, 1e3)
    mu = 0.01 * torch.randn(B, n, generator=gen, dtype=torch.float64)
    spec = PortfolioConstraints(long_only=True, max_weight=0.1, groups=[
        Group(list(range(6)), upper=0.2, name="g1"), Group(list(range(6, 12)), lower=0.15, upper=0.35, name="g2")])
    c = spec.compile(n).tensors()
    Q = 5.0 * S + 0.01 * torch.eye(n, dtype=torch.float64)
    handed = interior_point_calls
    restrict_from = active_set.RESTRICT_FROM
    # The batched method (the compiled kernels take the same updates: test_compiled.py).
    monkeypatch.setattr(active_set, "RESTRICT_FROM", 10**6)  # the full update throughout
    x_full = solve_qp(Q, -mu, c["G"], c["h0"], c["A"], c["b"], BATCHED)
    assert handed and handed[0]
    monkeypatch.setattr(active_set, "RESTRICT_FROM", restrict_from)
    handed.clear()
    x = solve_qp(Q, -mu, c["G"], c["h0"], c["A"], c["b"], BATCHED)
    assert handed == []
    for i in range(0, B, 5):
        ref = refs.portfolio(spec, mu[i].numpy(), S[i].numpy(), 5.0, 0.01)
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)
    # The interior point's elements of the full-update run stop at its tolerances (~4e-8 here).
    np.testing.assert_allclose(x.numpy(), x_full.numpy(), atol=1e-7)
    # The backward pass from the active set found this way, against finite differences.
    w = torch.linspace(-1.0, 1.3, n, dtype=torch.float64)
    refs.fd(lambda qq: (solve_qp(Q[:4], qq, c["G"], c["h0"], c["A"], c["b"], BATCHED) * w).sum(), [-mu[:4]], 0, gen)
