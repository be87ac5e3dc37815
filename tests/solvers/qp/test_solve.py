"""solve_qp: accuracy against cvxpy + Clarabel, gradients against finite differences, failures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradfolio.errors import ConfigError, SolverError
import gradfolio.solvers.qp.solve as qp_solve
from gradfolio.solvers import PortfolioConstraints, QPSettings, solve_qp


def random_qp(gen, B, n, m, p, cond=10.0, shared=True):
    """Feasible random QPs: Q with condition number ``cond``, constraints satisfied by a known x0."""
    Qm, _ = torch.linalg.qr(torch.randn(B, n, n, generator=gen, dtype=torch.float64))
    Q = (Qm * torch.logspace(0, -np.log10(cond), n, dtype=torch.float64)) @ Qm.mT
    q = torch.randn(B, n, generator=gen, dtype=torch.float64)
    G = torch.randn(m, n, generator=gen, dtype=torch.float64) if shared else torch.randn(B, m, n, generator=gen, dtype=torch.float64)
    A = torch.randn(p, n, generator=gen, dtype=torch.float64) if shared else torch.randn(B, p, n, generator=gen, dtype=torch.float64)
    x0 = torch.randn(B, n, generator=gen, dtype=torch.float64)
    h = (G @ x0.unsqueeze(-1)).squeeze(-1) + torch.rand(B, m, generator=gen, dtype=torch.float64)
    b = (A @ x0.unsqueeze(-1)).squeeze(-1)
    return Q, q, G, h, A, b



@pytest.mark.parametrize("cond", [10.0, 1e6])
@pytest.mark.parametrize("shared", [True, False])
def test_matches_clarabel(gen, refs, cond, shared):
    B, n, m, p = 5, 12, 20, 2
    Q, q, G, h, A, b = random_qp(gen, B, n, m, p, cond, shared)
    x = solve_qp(Q, q, G, h, A, b)
    for i in range(B):
        Gi, Ai = (G, A) if shared else (G[i], A[i])
        ref = refs.qp(Q[i].numpy(), q[i].numpy(), Gi.numpy(), h[i].numpy(), Ai.numpy(), b[i].numpy())
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-6 * max(1.0, np.abs(ref).max()))


def test_closed_forms(gen):
    B, n = 4, 6
    Q, q, *_ = random_qp(gen, B, n, 0, 0)
    x = solve_qp(Q, q)
    torch.testing.assert_close(x, -torch.linalg.solve(Q, q), rtol=1e-9, atol=1e-10)
    # Equality-constrained: KKT system [[Q, A'], [A, 0]] solved directly.
    A = torch.randn(2, n, generator=gen, dtype=torch.float64)
    b = torch.randn(2, dtype=torch.float64)
    K = torch.zeros(B, n + 2, n + 2, dtype=torch.float64)
    K[:, :n, :n], K[:, :n, n:], K[:, n:, :n] = Q, A.T, A
    sol = torch.linalg.solve(K, torch.cat([-q, b.expand(B, 2)], -1))
    torch.testing.assert_close(solve_qp(Q, q, A=A, b=b), sol[:, :n], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("idx", range(6))
def test_gradients_match_finite_differences(gen, refs, idx):
    Q, q, G, h, A, b = random_qp(gen, 3, 8, 10, 2, cond=100.0, shared=False)
    c = torch.randn(3, 8, generator=gen, dtype=torch.float64)

    def f(Q, q, G, h, A, b):
        return (solve_qp(0.5 * (Q + Q.mT), q, G, h, A, b) * c).sum()

    refs.fd(f, [Q, q, G, h, A, b], idx, gen)


def test_shared_constraint_gradients_are_summed(gen):
    Q, q, G, h, A, b = random_qp(gen, 3, 6, 8, 1)
    Gr, Ar = G.clone().requires_grad_(), A.clone().requires_grad_()
    solve_qp(Q, q, Gr, h, Ar, b).sum().backward()
    gG = torch.zeros_like(G)
    for i in range(3):
        Gi = G.clone().requires_grad_()
        solve_qp(Q[i:i + 1], q[i:i + 1], Gi, h[i:i + 1], A, b[i:i + 1]).sum().backward()
        gG += Gi.grad
    torch.testing.assert_close(Gr.grad, gG, rtol=1e-6, atol=1e-8)
    assert Ar.grad.shape == A.shape
    gA = torch.zeros_like(A)
    for i in range(3):
        Ai = A.clone().requires_grad_()
        solve_qp(Q[i:i + 1], q[i:i + 1], G, h[i:i + 1], Ai, b[i:i + 1]).sum().backward()
        gA += Ai.grad
    torch.testing.assert_close(Ar.grad, gA, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("idx", [2, 4])
def test_shared_constraint_gradients_match_finite_differences(gen, refs, idx):
    # a 2-D G or A is shared by the 3 problems: its gradient is the sum over the batch (an
    # average would be 3 times too small), checked against central differences
    Q, q, G, h, A, b = random_qp(gen, 3, 6, 8, 2, cond=10.0, shared=True)
    c = torch.randn(3, 6, generator=gen, dtype=torch.float64)

    def f(Q, q, G, h, A, b):
        return (solve_qp(Q, q, G, h, A, b) * c).sum()

    refs.fd(f, [Q, q, G, h, A, b], idx, gen)


def test_float32_close_to_float64(gen):
    Q, q, G, h, A, b = random_qp(gen, 8, 10, 15, 1)
    x64 = solve_qp(Q, q, G, h, A, b)
    x32 = solve_qp(*(t.float() for t in (Q, q, G, h, A, b)))  # solved in float64, cast back
    assert x32.dtype == torch.float32
    assert (x32.double() - x64).abs().max() < 1e-6 * (1 + x64.abs().max())
    # Native float32 on a long-only budget problem (the portfolio case).
    G, h = -torch.eye(10, dtype=torch.float64), torch.zeros(10, dtype=torch.float64)
    A, b = torch.ones(1, 10, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    x64 = solve_qp(Q, q, G, h, A, b)
    native = solve_qp(*(t.float() for t in (Q, q, G, h, A, b)), settings=QPSettings(compute_dtype=None))
    assert (native.double() - x64).abs().max() < 5e-3  # native float32: ~1e-4 residuals


def test_infeasible_element_is_named(gen):
    Q, q, G, h, A, b = random_qp(gen, 4, 3, 0, 0)
    G = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]], dtype=torch.float64)
    h = torch.tensor([[1.0, 0.0]] * 4, dtype=torch.float64)
    h[2] = torch.tensor([-1.0, -1.0])  # x0 <= -1 and x0 >= 1
    with pytest.raises(SolverError, match=r"element\(s\) 2 of 4"):
        solve_qp(Q, q, G, h)


def test_bad_shapes():
    with pytest.raises(ConfigError, match="q must have shape"):
        solve_qp(torch.eye(2), torch.zeros(2))
    with pytest.raises(ConfigError, match="G has shape"):
        solve_qp(torch.eye(2), torch.zeros(1, 2), torch.zeros(3, 3), torch.zeros(3))


@pytest.mark.parametrize("active_set_iter", [0, 1, 15])
def test_every_path_matches_clarabel_and_finite_differences(gen, refs, active_set_iter):
    # 0: interior point (with polish) only; 1: the active-set method hands most elements over;
    # 15 (default): the active-set method finishes them.
    settings = QPSettings(active_set_iter=active_set_iter)
    Q, q, G, h, A, b = random_qp(gen, 4, 8, 12, 1, cond=1e3, shared=False)
    x = solve_qp(Q, q, G, h, A, b, settings)
    for i in range(4):
        ref = refs.qp(Q[i].numpy(), q[i].numpy(), G[i].numpy(), h[i].numpy(), A[i].numpy(), b[i].numpy())
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)
    c = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    for idx in (1, 3):
        refs.fd(lambda *a: (solve_qp(*a, settings=settings) * c).sum(), [Q, q, G, h, A, b], idx, gen)


@pytest.mark.parametrize("compiled", [True, False])
def test_long_only_budget_with_fixed_and_tied_variables(gen, refs, compiled):
    # lower == upper for asset 0 (both bound rows bind), and a problem where every weight sits on
    # a bound (all variables fixed: the active-set system has no free variable left).
    n, B = 6, 3
    Qm = refs.cov(gen, B, n, 100.0) * 25
    q = 0.05 * torch.randn(B, n, generator=gen, dtype=torch.float64)
    lo = torch.tensor([0.2, 0, 0, 0, 0, 0], dtype=torch.float64)
    hi = torch.tensor([0.2, 0.5, 0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64)
    G, h = torch.cat([-eye, eye]), torch.cat([-lo, hi])
    A, b = torch.ones(1, n, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    for lo_hi in ((lo, hi), (torch.full((n,), 1 / n, dtype=torch.float64),) * 2):
        h = torch.cat([-lo_hi[0], lo_hi[1]])
        x = solve_qp(Qm, q, G, h, A, b, QPSettings(compiled=compiled))
        for i in range(B):
            ref = refs.qp(Qm[i].numpy(), q[i].numpy(), G.numpy(), h.numpy(), A.numpy(), b.numpy())
            np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)
    torch.testing.assert_close(x, torch.full((B, n), 1 / n, dtype=torch.float64))
    # Asset 0 is pinned at lower_0 = upper_0: moving both bounds by +1 moves w0 by +1 in every
    # element (h holds -lower_0 at row 0 and upper_0 at row n), whichever row took the multiplier.
    h = torch.cat([-lo, hi]).requires_grad_()
    x = solve_qp(Qm, q, G, h.expand(B, -1), A, b, QPSettings(compiled=compiled))
    (g,) = torch.autograd.grad(x[:, 0].sum(), h)
    assert float(-g[0] + g[n]) == pytest.approx(B, abs=1e-9)


@pytest.mark.parametrize("compiled", [True, False])
def test_linear_program_is_solved(gen, refs, compiled):
    # Q = 0: a box-and-budget LP (a vertex solution), through whichever path finishes it.
    n, B = 5, 2
    q = torch.randn(B, n, generator=gen, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64)
    G, h = torch.cat([-eye, eye]), torch.cat([torch.zeros(n), torch.full((n,), 0.4)]).double()
    A, b = torch.ones(1, n, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    x = solve_qp(torch.zeros(n, n, dtype=torch.float64), q, G, h, A, b, QPSettings(compiled=compiled))
    for i in range(B):
        ref = refs.qp(np.zeros((n, n)), q[i].numpy(), G.numpy(), h.numpy(), A.numpy(), b.numpy())
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(gen):
    Q, q, G, h, A, b = random_qp(gen, 6, 10, 14, 1, cond=1e3, shared=False)
    c = torch.randn(6, 10, generator=gen, dtype=torch.float64)
    grads = []
    for device in ("cpu", "cuda"):
        args = [t.to(device).requires_grad_() for t in (Q, q, G, h, A, b)]
        x = solve_qp(*args)
        assert x.device.type == device
        (x * c.to(device)).sum().backward()
        grads.append([x.detach().cpu()] + [a.grad.cpu() for a in args])
    for cpu, cuda in zip(*grads):
        torch.testing.assert_close(cuda, cpu, rtol=1e-7, atol=1e-9)


def test_unbounded_problem_without_inequalities_is_named():
    # Q = 0 and no constraints: min q'x has no solution; element 1 of 2 must be named, not crash.
    Q = torch.zeros(2, 2, 2, dtype=torch.float64)
    Q[0] = torch.eye(2, dtype=torch.float64)
    q = torch.ones(2, 2, dtype=torch.float64)
    with pytest.raises(SolverError, match=r"no finite solution .*element\(s\) 1 of 2"):
        solve_qp(Q, q)


def test_compacted_and_whole_batch_active_set_agree(gen, monkeypatch):
    # Large batches drop finished elements after every solve, small ones re-solve them until all
    # are done (and the backward pass reuses the last factorization): both give the same x and grads.
    import gradfolio.solvers.qp.active_set as active_set

    Q, q, G, h, A, b = random_qp(gen, 6, 10, 16, 1, cond=1e3, shared=False)
    c = torch.randn(6, 10, generator=gen, dtype=torch.float64)
    results = []
    for compact_batch in (1, 10**9):
        monkeypatch.setattr(active_set, "COMPACT_BATCH", compact_batch)
        args = [t.clone().requires_grad_() for t in (Q, q, G, h, A, b)]
        x = solve_qp(*args)
        (x * c).sum().backward()
        results.append([x.detach()] + [a.grad for a in args])
    for compacted, whole in zip(*results):
        torch.testing.assert_close(compacted, whole, rtol=1e-9, atol=1e-12)


def test_backward_reuses_forward_factorization_and_second_backward_rebuilds_it(gen):
    # The batched torch method (the compiled kernels factor the adjoint system per element anyway).
    Q, q, G, h, A, b = random_qp(gen, 4, 8, 12, 2, cond=1e3)
    q = q.requires_grad_()
    x = solve_qp(Q, q, G, h, A, b, QPSettings(compiled=False))
    c = torch.randn(4, 8, generator=gen, dtype=torch.float64)
    (g1,) = torch.autograd.grad((x * c).sum(), q, retain_graph=True)  # the forward's last system
    (g2,) = torch.autograd.grad((x * c).sum(), q)  # factored again from the saved active sets
    torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-13)
    # and both are the implicit-function gradient: dx/dq = -K^{-1}, checked against finite differences
    eps = 1e-6
    fd = torch.stack([
        ((solve_qp(Q, q.detach() + eps * e, G, h, A, b) - solve_qp(Q, q.detach() - eps * e, G, h, A, b)) * c).sum()
        / (2 * eps)
        for e in torch.eye(8, dtype=torch.float64)[:, None, :].expand(8, 4, 8)
    ])
    assert float((g1.sum(0) - fd).abs().max()) < 1e-6


@pytest.mark.parametrize("compiled", [True, False])
def test_high_risk_aversion_is_finished_by_the_active_set_method(refs, monkeypatch, compiled):
    # Sample covariances of real returns with gamma = 100: |Qx| ~ 30 >> |q|. The dual residual is
    # judged relative to |Qx|, so the solve's round-off (~1e-9 here) does not send the elements
    # to the interior point (it did when the scale was 1 + |q|).
    mu, S = refs.sp500(20, range(0, 16 * 200, 200))
    c = PortfolioConstraints(long_only=True).compile(20).tensors()

    def no_interior_point(*args):
        raise AssertionError("the interior point was called")

    monkeypatch.setattr(qp_solve, "interior_point", no_interior_point)
    x = solve_qp(100.0 * S, -mu, c["G"], c["h0"], c["A"], c["b"], QPSettings(compiled=compiled))
    for i in (0, 7):
        ref = refs.portfolio(PortfolioConstraints(long_only=True), mu[i].numpy(), S[i].numpy(), 100.0, 0.0)
        np.testing.assert_allclose(x[i].numpy(), ref, atol=1e-7)


def test_shared_rows_are_cached_per_tensor_and_recomputed_after_an_in_place_change(gen, refs):
    # solve_qp keeps the sorted rows of a shared G (and A) between calls with the same tensors;
    # an in-place change of G (its version counter) or another G must not reuse them.
    n = 6
    Q = refs.cov(gen, 2, n, 10.0) * 5
    q = 0.05 * torch.randn(2, n, generator=gen, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64)
    G = torch.cat([torch.ones(1, n, dtype=torch.float64), -eye, eye])  # a general row first
    h = torch.cat([torch.tensor([1.0]), torch.zeros(n), torch.full((n,), 0.35)]).double()
    A, b = torch.ones(1, n, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    before = qp_solve._sorted_rows(G, A)
    assert qp_solve._sorted_rows(G, A)[2] is before[2]  # cached
    x = solve_qp(Q, q, G, h, A, b)
    G[1 + n + 2, 2] = 0.5  # the upper bound of asset 2 becomes 0.35 / 0.5 = 0.7
    assert qp_solve._sorted_rows(G, A)[2] is not before[2]
    for Gi in (G, G.clone()):
        x2 = solve_qp(Q, q, Gi, h, A, b)
        for i in range(2):
            ref = refs.qp(Q[i].numpy(), q[i].numpy(), Gi.numpy(), h.numpy(), A.numpy(), b.numpy())
            np.testing.assert_allclose(x2[i].numpy(), ref, atol=1e-7)
    assert float((x2 - x).abs().max()) > 1e-3  # the change mattered


@pytest.mark.parametrize("compiled", [True, False])
def test_g_with_bound_rows_last_is_used_as_is_and_gives_the_bits_of_any_order(gen, refs, compiled):
    # solve_qp moves a shared G's bound rows last; a G that has them there already is neither
    # copied nor permuted (no h to permute per call), and its row cache must not keep it alive.
    import gc
    import weakref

    n, s = 6, QPSettings(compiled=compiled)
    Q = refs.cov(gen, 3, n, 10.0) * 5
    q = 0.05 * torch.randn(3, n, generator=gen, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64)
    general = torch.cat([torch.ones(1, n), torch.tensor([[1.0, 1.0, 0, 0, 0, 0]])]).double()
    G_last, G_first = torch.cat([general, -eye, eye]), torch.cat([-eye, general, eye])
    h_gen, h_lo, h_hi = torch.tensor([1.0, 0.3]).double(), torch.zeros(n).double(), torch.full((n,), 0.35).double()
    h_last, h_first = torch.cat([h_gen, h_lo, h_hi]), torch.cat([h_lo, h_gen, h_hi])
    A, b = torch.ones(1, n, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    perm, Gs, _ = qp_solve._sorted_rows(G_last, A)
    assert perm is None and Gs is G_last
    qg = q.clone().requires_grad_()
    x = solve_qp(Q, qg, G_last, h_last, A, b, s)
    (grad,) = torch.autograd.grad(x[:, 0].sum(), qg)
    qg = q.clone().requires_grad_()
    x_first = solve_qp(Q, qg, G_first, h_first, A, b, s)
    (grad_first,) = torch.autograd.grad(x_first[:, 0].sum(), qg)
    assert torch.equal(x_first, x) and torch.equal(grad_first, grad)
    for i in range(3):
        ref = refs.qp(Q[i].numpy(), q[i].numpy(), G_last.numpy(), h_last.numpy(), A.numpy(), b.numpy())
        np.testing.assert_allclose(x[i].detach().numpy(), ref, atol=1e-7)
    held = weakref.ref(G_last)
    del G_last, Gs
    gc.collect()
    assert held() is None
