"""The compiled element-by-element active-set method (qp/compiled.py, qp/_kernels.py): the same
updates, guess and system as the batched torch method, exact against Clarabel, batch-independent
bits, the backward's adjoint, and where elements go when the kernels do not finish them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gradfolio.solvers.qp.active_set as active_set
import gradfolio.solvers.qp.compiled as compiled
import gradfolio.solvers.qp.solve as qp_solve
from gradfolio.solvers import Group, PortfolioConstraints, QPSettings, solve_qp
from gradfolio.solvers.qp import _kernels
from gradfolio.solvers.qp.active_set import ActiveSet, next_active_set
from gradfolio.solvers.qp.separable import separable_active_set
from gradfolio.solvers.qp.standard_form import StandardForm

BATCHED = QPSettings(compiled=False)
F64 = torch.float64


def group_spec(n: int, max_weight: float = 0.2) -> PortfolioConstraints:
    """Long-only, max weight and two groups (the second with both limits): general and bound rows."""
    return PortfolioConstraints(long_only=True, max_weight=max_weight, groups=[
        Group([0, 1], upper=0.2, name="g1"), Group([2, 3], lower=0.15, upper=0.35, name="g2")])


def group_problem(seed: int, B: int, n: int, refs, cond: float = 1e3):
    """``Q, q`` of ``B`` mean-variance problems (gamma 5, alpha 0.01) and the compiled constraints."""
    gen = torch.Generator().manual_seed(seed)
    S = refs.cov(gen, B, n, cond)
    mu = 0.01 * torch.randn(B, n, generator=gen, dtype=F64)
    return 5.0 * S + 0.01 * torch.eye(n, dtype=F64), -mu, S, mu, group_spec(n).compile(n).tensors()


def form_of(Q, q, c, A=None) -> StandardForm:
    """The standard form ``solve_qp`` builds (bound rows last)."""
    perm, G, rows = qp_solve._sorted_rows(c["G"], c["A"] if A is None else A)
    B = q.shape[0]
    return StandardForm.build(Q, q, G, c["h0"][perm].expand(B, -1), c["A"] if A is None else A,
                              c["b"].expand(B, -1), rows)


@pytest.mark.parametrize("n", [10, 30])
def test_kernels_match_clarabel_and_the_batched_method(refs, monkeypatch, n):
    Q, q, S, mu, c = group_problem(7, 12, n, refs)
    statuses = []
    real = compiled.solve_elements
    monkeypatch.setattr(compiled, "solve_elements", lambda *a: statuses.append(real(*a)[4]) or real(*a))
    x = solve_qp(Q, q, c["G"], c["h0"], c["A"], c["b"])
    assert len(statuses) == 1 and (statuses[0] == compiled.SOLVED).all()
    x_batched = solve_qp(Q, q, c["G"], c["h0"], c["A"], c["b"], BATCHED)
    np.testing.assert_allclose(x.numpy(), x_batched.numpy(), atol=1e-7)  # the batched one may end in the IPM
    binding = 0
    for i in range(0, 12, 3):
        ref = refs.portfolio(group_spec(n), mu[i].numpy(), S[i].numpy(), 5.0, 0.01)
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)
        binding += abs(ref[2] + ref[3] - 0.15) < 1e-7 or abs(ref[0] + ref[1] - 0.2) < 1e-7
    assert binding  # some group rows bind: the general rows of the kernel are exercised


def test_cycling_elements_take_single_row_steps_instead_of_the_interior_point(refs, interior_point_calls):
    # On these batches the batched method's updates cycle for some elements (they go to the
    # interior point); the kernels leave the cycle one row at a time and finish every element.
    handed = interior_point_calls
    cycled = 0
    for seed in (0, 6, 23):
        Q, q, S, mu, c = group_problem(seed, 16, 10, refs)
        handed.clear()
        x_batched = solve_qp(Q, q, c["G"], c["h0"], c["A"], c["b"], BATCHED)
        cycled += sum(len(h) for h in handed)
        left = [i for h in handed for i in h]
        handed.clear()
        x = solve_qp(Q, q, c["G"], c["h0"], c["A"], c["b"])
        assert handed == []
        for i in left:
            ref = refs.portfolio(group_spec(10), mu[i].numpy(), S[i].numpy(), 5.0, 0.01)
            np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)
            np.testing.assert_allclose(x_batched[i].numpy(), ref, atol=1e-6)
    assert cycled >= 3


def test_an_element_gets_the_same_bits_alone_as_in_any_batch(refs):
    Q, q, _, _, c = group_problem(3, 10, 12, refs)
    qg = q.clone().requires_grad_()
    x = solve_qp(Q, qg, c["G"], c["h0"], c["A"], c["b"])
    w = torch.linspace(-1.0, 1.7, 12, dtype=F64)
    (g,) = torch.autograd.grad((x * w).sum(), qg)
    perm = torch.tensor([7, 2, 9, 0, 5, 1, 8, 3, 6, 4])
    x_perm = solve_qp(Q[perm], q[perm], c["G"], c["h0"], c["A"], c["b"])
    assert torch.equal(x_perm, x[perm])
    for i in (0, 4, 9):
        qi = q[i:i + 1].clone().requires_grad_()
        xi = solve_qp(Q[i:i + 1], qi, c["G"], c["h0"], c["A"], c["b"])
        (gi,) = torch.autograd.grad((xi * w).sum(), qi)
        assert torch.equal(xi[0], x[i]) and torch.equal(gi[0], g[i])


def test_gradients_match_finite_differences_and_the_batched_backward(refs, gen):
    Q, q, _, _, c = group_problem(11, 6, 10, refs)
    w = torch.linspace(-1.0, 1.3, 10, dtype=F64)
    for s in (QPSettings(), BATCHED):
        # Q symmetrized inside, so that a random (asymmetric) direction is a valid perturbation.
        f = lambda QQ, qq, s=s: (solve_qp(0.5 * (QQ + QQ.mT), qq, c["G"], c["h0"], c["A"], c["b"], s) * w).sum()  # noqa: E731
        refs.fd(f, [Q, q], 1, gen)
        refs.fd(f, [Q, q], 0, gen)
    grads = []
    for s in (QPSettings(), BATCHED):
        Qg, qg = Q.clone().requires_grad_(), q.clone().requires_grad_()
        (solve_qp(Qg, qg, c["G"], c["h0"], c["A"], c["b"], s) * w).sum().backward()
        grads.append((Qg.grad, qg.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], atol=1e-8, rtol=1e-7)
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("batched_A", [False, True])
def test_adjoint_equals_the_torch_system(refs, gen, batched_A):
    Q, q, _, _, c = group_problem(5, 8, 10, refs)
    A = c["A"].expand(8, 1, 10).clone() if batched_A else None
    form = form_of(Q, q, c, A)
    x, y, lam, act, status, solves = compiled.solve_elements(form, 1e-9, 1e-11, 25, 2, 4, 0.5)
    assert (status == compiled.SOLVED).all() and (solves >= 1).all()
    assert act[:, :form.mg].any()  # general rows in the active sets
    g = torch.randn(8, 10, generator=gen, dtype=F64)
    got = compiled.adjoint(form, act, 1e-11, g)
    want = ActiveSet(form, act, 1e-11).adjoint(g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-8)


def test_backward_falls_back_to_torch_when_a_kernel_factorization_fails(refs, monkeypatch):
    Q, q, _, _, c = group_problem(2, 4, 10, refs)
    w = torch.linspace(0.3, -1.1, 10, dtype=F64)

    def grad():
        qg = q.clone().requires_grad_()
        (solve_qp(Q, qg, c["G"], c["h0"], c["A"], c["b"]) * w).sum().backward()
        return qg.grad

    want = grad()
    torch_adjoint = []
    real = ActiveSet.adjoint
    monkeypatch.setattr(ActiveSet, "adjoint", lambda self, g: torch_adjoint.append(1) or real(self, g))
    monkeypatch.setattr(_kernels, "adjoint_batch", lambda *a: a[-1].fill(False))  # every element "fails"
    torch.testing.assert_close(grad(), want, atol=1e-10, rtol=1e-9)
    assert torch_adjoint == [1]


def test_elements_outside_the_kernels_go_to_the_batched_method_and_unsolved_ones_to_the_interior_point(
        refs, monkeypatch, interior_point_calls):
    Q, q, S, mu, c = group_problem(4, 6, 10, refs)
    real = compiled.solve_elements

    def mark(*args):
        x, y, lam, act, status, solves = real(*args)
        status = status.clone()
        status[1], status[4] = compiled.OUTSIDE, compiled.UNSOLVED
        return x, y, lam, act, status, solves

    monkeypatch.setattr(compiled, "solve_elements", mark)
    batched = []
    solve_on = active_set.solve_on
    monkeypatch.setattr(active_set, "solve_on", lambda form, *a: batched.append(form.q.shape[0]) or solve_on(form, *a))
    handed = interior_point_calls
    x = solve_qp(Q, q, c["G"], c["h0"], c["A"], c["b"])
    assert batched and set(batched) == {1}  # the batched method solved one element
    assert handed == [[4]]
    for i in (1, 4, 5):
        ref = refs.portfolio(group_spec(10), mu[i].numpy(), S[i].numpy(), 5.0, 0.01)
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)


def test_a_variable_fixed_by_two_bound_rows_is_outside_the_kernel(refs):
    Q, q, _, _, c = group_problem(4, 1, 10, refs)
    form = form_of(Q, q, c)
    n, m, mg = 10, form.h.shape[1], form.mg
    act = np.zeros(m, np.bool_)
    cols = form.cols.numpy()
    both = [mg + j for j in range(len(cols)) if cols[j] == 3]
    assert len(both) == 2
    act[both] = True
    out = [np.zeros(n), np.zeros(1), np.zeros(m), np.zeros(1, np.int64)]
    status = _kernels.solve_element(
        Q[0].numpy(), q[0].numpy(), form.R.numpy(), form.r[0].numpy(), mg, form.h[0].numpy(), cols,
        form.coef.numpy(), form.bound_value[0].numpy(), float(form.scale_p[0]), float(form.scale_d[0]),
        float(form.rho[0]), float(form.scale_q[0]), act, 1e-9, 1e-11, 25, 2, 4, 0.5, 0, *out)
    assert status == compiled.OUTSIDE


def test_without_numba_the_batched_method_solves_everything(refs, monkeypatch):
    Q, q, S, mu, c = group_problem(8, 3, 10, refs)
    monkeypatch.setattr(compiled, "available", lambda: False)
    monkeypatch.setattr(compiled, "solve_elements", lambda *a: pytest.fail("the kernels were called"))
    x = solve_qp(Q, q, c["G"], c["h0"], c["A"], c["b"])
    ref = refs.portfolio(group_spec(10), mu[1].numpy(), S[1].numpy(), 5.0, 0.01)
    np.testing.assert_allclose(x[1].numpy(), ref, atol=1e-7)


def test_applies_only_to_float64_cpu_batches_with_a_shared_g(refs):
    Q, q, _, _, c = group_problem(1, 2, 10, refs)
    assert compiled.applies(form_of(Q, q, c))
    assert not compiled.applies(form_of(Q.float(), q.float(), {k: v.float() for k, v in c.items()}))
    f = form_of(Q, q, c)
    batched_G = StandardForm.build(Q, q, f.G.expand(2, -1, -1), f.h, f.A, f.b)
    assert not compiled.applies(batched_G)
    n = compiled.COMPILED_N + 1
    big = PortfolioConstraints(long_only=True).compile(n).tensors()
    eye = torch.eye(n, dtype=F64)[None]
    assert not compiled.applies(form_of(eye, torch.zeros(1, n, dtype=F64), big))


def _random_form(data, n: int, p: int, B: int = 1) -> StandardForm:
    """A random problem with bounds on every variable (some fixed: lo == hi), ``p`` equalities."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    lo = rng.uniform(-0.3, 0.1, n)
    hi = lo + rng.uniform(0.0, 0.6, n) * (rng.uniform(size=n) > 0.1)
    d = rng.uniform(0.2, 3.0, (B, n))
    Q = torch.from_numpy(np.stack([np.diag(di) for di in d]) + 0.01)
    q = torch.from_numpy(rng.normal(size=(B, n)))
    eye = torch.eye(n, dtype=F64)
    G = torch.cat([torch.ones(1, n, dtype=F64), -eye, eye])  # a general row first, then the bounds
    h = torch.from_numpy(np.concatenate([[10.0], -lo, hi]))[None].expand(B, -1)
    A = torch.from_numpy(rng.uniform(0.5, 1.5, (p, n)))
    b = torch.from_numpy(rng.uniform(-0.5, 1.0, (B, p)))
    return StandardForm.build(Q, q, G, h, A, b)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(1, 9), p=st.integers(0, 2))
def test_separable_guess_equals_the_batched_guess(data, n, p):
    form = _random_form(data, n, p)
    want = separable_active_set(form)
    act = np.ones(form.h.shape[1], np.bool_)
    _kernels.separable_guess(form.Q[0].numpy(), form.q[0].numpy(), form.A[0].numpy() if p else form.q[0].numpy(),
                             float(form.b[0, 0]) if p else 0.0, p, form.mg, form.cols.numpy(), form.coef.numpy(),
                             form.bound_value[0].numpy(), float(form.scale_q[0]), act)
    expected = np.zeros(form.h.shape[1], np.bool_) if want is None else want[0].numpy()
    np.testing.assert_array_equal(act, expected)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(2, 8), restricted=st.booleans())
def test_update_equals_the_batched_update(data, n, restricted):
    form = _random_form(data, n, 1)
    m = form.h.shape[1]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    act = rng.uniform(size=m) < data.draw(st.floats(0.2, 0.9))
    lam = rng.normal(size=m) * act
    s = rng.normal(size=m) * 0.1 * (1 - act)
    support = form.support
    want = next_active_set(form, torch.from_numpy(act)[None], torch.from_numpy(lam)[None], torch.from_numpy(s)[None],
                           torch.tensor([False]), support, restricted)[0].numpy()
    new = np.zeros(m, np.bool_)
    _kernels.update(act, lam, s, form.mg, form.cols.numpy(), form.coef.numpy(), form.bound_value[0].numpy(),
                    form.A[0].numpy(), float(form.b[0, 0]), float(form.scale_p[0]), restricted, active_set.ADD_FRACTION,
                    0 if support is None else int(support[0]), np.zeros(n, np.int64), new)
    np.testing.assert_array_equal(new, want)


def test_guarded_step_is_taken_where_the_budget_would_be_starved():
    # Three weights in [0, 0.45] summing to 1: an update fixing all three at bounds is starved;
    # the kernel takes the batched method's guarded step (the most violated row only, and a swap).
    eye = torch.eye(3, dtype=F64)
    G = torch.cat([-eye, eye])
    form = StandardForm.build(eye, torch.zeros(1, 3, dtype=F64), G, torch.tensor([[0.0] * 3 + [0.45] * 3], dtype=F64),
                              torch.ones(1, 3, dtype=F64), torch.ones(1, 1, dtype=F64))
    assert form.support is not None
    act = np.array([0, 1, 0, 1, 0, 0], np.bool_)
    lam = np.array([0.0, 0.3, 0.0, 0.2, 0.0, 0.0])
    s = np.array([0.4, 0.0, 0.5, 0.0, -0.1, -0.05])
    want = next_active_set(form, torch.from_numpy(act)[None], torch.from_numpy(lam)[None], torch.from_numpy(s)[None],
                           torch.tensor([False]), form.support)[0].numpy()
    full = np.where(act, lam > 0, s < 0)
    assert not np.array_equal(want, full)  # the guard changed the update
    new = np.zeros(6, np.bool_)
    _kernels.update(act, lam, s, 0, form.cols.numpy(), form.coef.numpy(), form.bound_value[0].numpy(),
                    form.A[0].numpy(), 1.0, float(form.scale_p[0]), False, 0.5, int(form.support[0]),
                    np.zeros(3, np.int64), new)
    np.testing.assert_array_equal(new, want)
