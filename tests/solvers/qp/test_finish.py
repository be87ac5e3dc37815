"""The NumPy tail of the active-set method (qp/finish.py): exact, batch-independent, differentiable."""

from __future__ import annotations

import numpy as np
import torch

import gradfolio.solvers.qp.active_set as active_set
import gradfolio.solvers.qp.finish as finish
import gradfolio.solvers.qp.solve as qp_solve
from gradfolio.solvers import Group, PortfolioConstraints, solve_qp
from gradfolio.solvers.qp.standard_form import StandardForm

SPEC = PortfolioConstraints(long_only=True, max_weight=0.1, groups=[
    Group(list(range(6)), upper=0.2, name="g1"), Group(list(range(6, 12)), lower=0.15, upper=0.35, name="g2")])


def group_problem(gen, refs, B=32, n=30):
    """Max weight and two groups on dense covariances (some elements need 10+ active-set solves)."""
    S = refs.cov(gen, B, n, 1e3)
    mu = 0.01 * torch.randn(B, n, generator=gen, dtype=torch.float64)
    c = SPEC.compile(n).tensors()
    return S, mu, (5.0 * S + 0.01 * torch.eye(n, dtype=torch.float64), -mu, c["G"], c["h0"], c["A"], c["b"])


def record_tail(monkeypatch):
    """Record the batch indices (in the live batch) handed to the NumPy tail and to the interior point."""
    tails, handed = [], []
    real_finish, real_ipm = active_set.finish_elements, qp_solve.interior_point

    def tail(form, act, *args):
        out = real_finish(form, act, *args)
        tails.append(form.q.shape[0])
        return out

    def ipm(form, settings, out, index, B):
        handed.append(index.tolist())
        real_ipm(form, settings, out, index, B)

    monkeypatch.setattr(active_set, "finish_elements", tail)
    monkeypatch.setattr(qp_solve, "interior_point", ipm)
    return tails, handed


def test_tail_elements_are_exact_without_the_interior_point(gen, refs, monkeypatch):
    S, mu, args = group_problem(gen, refs)
    tails, handed = record_tail(monkeypatch)
    x = solve_qp(*args)
    assert tails and tails[0] >= 3  # several elements were left after FINISH_FROM solves
    assert handed == []
    for i in range(32):
        ref = refs.portfolio(SPEC, mu[i].numpy(), S[i].numpy(), 5.0, 0.01)
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)


def test_a_tail_element_gets_the_same_bits_alone_as_in_any_batch(gen, refs, monkeypatch):
    # predict (one date) must reproduce a backtest's weights (many dates) bit for bit: what an
    # element does from the hand-over on depends on the element alone. (Elements finished by the
    # batched solves are exact too, but their last bits may depend on the batch: the padded
    # size of the system is the batch's largest free set.)
    _, _, (Q, q, G, h, A, b) = group_problem(gen, refs)
    tail_q = []
    real = active_set.finish_elements
    monkeypatch.setattr(active_set, "finish_elements", lambda form, *a: tail_q.append(form.q.clone()) or real(form, *a))
    x = solve_qp(Q, q, G, h, A, b)
    tail = [i for i in range(32) if any(torch.equal(q[i], r) for r in tail_q[0])]
    assert len(tail) >= 3
    for i in tail:
        alone = solve_qp(Q[i:i + 1], q[i:i + 1], G, h, A, b)
        assert torch.equal(alone[0], x[i]), i
    pair = solve_qp(Q[tail[:2]], q[tail[:2]], G, h, A, b)
    assert torch.equal(pair, x[tail[:2]])


def test_gradient_through_tail_elements_matches_finite_differences(gen, refs, monkeypatch):
    _, _, (Q, q, G, h, A, b) = group_problem(gen, refs, B=8)
    tails, handed = record_tail(monkeypatch)
    weights = torch.linspace(-1.0, 2.0, q.shape[1], dtype=torch.float64)
    # Q through its symmetric part (a random direction of Q is not symmetric).
    f = lambda P, q_: (solve_qp(0.5 * (P + P.mT), q_, G, h, A, b) * weights).sum()
    # A small step: at 1e-5 one element's direction crosses a change of its active set.
    refs.fd(f, [Q, q], 1, gen, eps=1e-7)
    refs.fd(f, [Q, q], 0, gen, eps=1e-7)
    assert tails and handed == []


def test_an_element_the_tail_cannot_finish_goes_to_the_interior_point(gen, refs, monkeypatch):
    S, mu, args = group_problem(gen, refs, B=8)
    real = finish._iterate
    calls = []

    def first_fails(*a):
        calls.append(1)
        return None if len(calls) == 1 else real(*a)

    monkeypatch.setattr(finish, "_iterate", first_fails)
    _, handed = record_tail(monkeypatch)
    x = solve_qp(*args)
    assert len(handed) == 1 and len(handed[0]) == 1
    i = handed[0][0]
    ref = refs.portfolio(SPEC, mu[i].numpy(), S[i].numpy(), 5.0, 0.01)
    np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)


def test_tail_applies_to_float64_cpu_problems_with_shared_rows_only(gen, refs):
    _, _, (Q, q, G, h, A, b) = group_problem(gen, refs, B=2)
    perm = torch.argsort(((G != 0).sum(dim=-1) == 1).int(), stable=True)  # bound rows last, as solve_qp does
    G, h, b = G[perm], h[perm].expand(2, -1), b.expand(2, -1)
    assert finish.applies(StandardForm.build(Q, q, G, h, A, b))
    assert not finish.applies(StandardForm.build(Q.float(), q.float(), G.float(), h.float(), A.float(), b.float()))
    Gb = G.expand(2, -1, -1)
    assert not finish.applies(StandardForm.build(Q, q, Gb, h, A, b))  # a batched G: no bound rows split off
    n = finish.FINISH_N + 1
    c = PortfolioConstraints(long_only=True).compile(n).tensors()
    big = StandardForm.build(torch.eye(n, dtype=torch.float64), torch.zeros(1, n, dtype=torch.float64), c["G"],
                             c["h0"][None], c["A"], c["b"][None])
    assert not finish.applies(big)
