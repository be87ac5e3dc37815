"""Leverage and turnover in N variables (qp/l1_active_set.py): weights vs Clarabel, the working
sets it ends with, gradients vs finite differences (through every kind of fixed asset), bits
independent of the batch, the fallback to the standard form, and the dispatch of ConvexProblem."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from gradfolio.errors import InfeasibleError
from gradfolio.solvers import ConvexProblem, Group, PortfolioConstraints, QPSettings
from gradfolio.solvers.qp import l1_active_set
from gradfolio.solvers.qp.l1_active_set import L1Spec, solve_l1

pytest.importorskip("numba")

f64 = torch.float64


def spec_of(pc: PortfolioConstraints, n: int) -> L1Spec:
    plain = replace(pc, leverage=None, turnover=None)._compile_unchecked(n)
    return L1Spec.build(plain.G, plain.h0, plain.A, plain.b, pc.leverage, pc.turnover)


def kernel_run(Q: torch.Tensor, q: torch.Tensor, c: torch.Tensor, spec: L1Spec, tol: float = 1e-9):
    """The forward kernels alone: weights, status, final kinds, multipliers, solves."""
    from gradfolio.solvers.qp import _l1_kernels as K

    B, n = q.shape
    kind, sgn = np.zeros((B, n), np.int64), np.ones((B, 2, n))
    gact, on = np.zeros((B, spec.mg), np.bool_), np.zeros((B, 2), np.bool_)
    x, lam = np.zeros((B, n)), np.zeros((B, spec.p + spec.mg + 2))
    status, used = np.zeros(B, np.int64), np.zeros(B, np.int64)
    K.forward_batch(Q.numpy(), q.numpy(), c.numpy(), *spec.args(), tol, 1e-11, l1_active_set.primal_cap(n, spec.mg),
                    l1_active_set.ITERS, kind, sgn, gact, on, x, lam, status, used)
    return x, status, kind, lam, on, used


def long_short(n: int) -> PortfolioConstraints:
    # Asymmetric limits: a swapped lower/upper or leverage/turnover would change the answer.
    return PortfolioConstraints(lower=-0.15, max_weight=0.35, leverage=1.3, turnover=0.8,
                                groups=[Group(list(range(n // 3)), lower=-0.05, upper=0.4, name="g1"),
                                        Group(list(range(n // 3, n // 2)), upper=0.3, name="g2")])


def test_spec_build_reads_bounds_groups_and_limits():
    pc = PortfolioConstraints(budget=0.8, lower=[-0.1, -0.2, None, 0.0], upper=[0.5, None, 0.3, 0.7],
                              groups=[Group([0, 2], lower=-0.05, upper=0.45)], leverage=1.7)
    sp = spec_of(pc, 4)
    np.testing.assert_array_equal(sp.lo, [-0.1, -0.2, -np.inf, 0.0])
    np.testing.assert_array_equal(sp.hi, [0.5, np.inf, 0.3, 0.7])
    assert (sp.p, sp.mg) == (1, 2)
    np.testing.assert_array_equal(sp.R, [[1, 1, 1, 1], [1, 0, 1, 0], [-1, 0, -1, 0]])
    np.testing.assert_array_equal(sp.rr, [0.8, 0.45, 0.05])
    assert sp.leverage == 1.7 and sp.turnover == math.inf


@pytest.mark.parametrize("n", [8, 10, 50])
def test_matches_clarabel_and_ends_with_kinks(refs, n):
    # n = 10, 50: the previous weights are feasible, the primal method starts there; n = 8: they
    # break the second group's limit (2/6 > 0.3), the primal-dual method starts from all free.
    pc = long_short(n)
    gen = torch.Generator().manual_seed(n)
    B = 6
    cov = refs.cov(gen, B, n, 1e3)
    mu = torch.randn(B, n, generator=gen, dtype=f64) * torch.tensor([0.01, 0.03, 0.1, 0.3, 0.03, 0.1], dtype=f64)[:, None]
    w_prev = torch.full((B, n), 1.0 / n, dtype=f64)
    w_prev[:, :2] = 0.0  # previous weights at zero: the two kinks coincide
    w_prev = w_prev / w_prev.sum(-1, keepdim=True)
    gamma = 4.0
    x, status, kind, lam, on, used = kernel_run(gamma * cov, -mu, w_prev, spec_of(pc, n))
    w = ConvexProblem(n, pc).solve(mu, cov=cov, gamma=gamma, w_prev=w_prev)
    for i in range(B):
        ref = refs.portfolio(pc, mu[i].numpy(), cov[i].numpy(), gamma, 0.0, w_prev[i].numpy())
        np.testing.assert_allclose(w[i].numpy(), ref, atol=1e-7)
        if status[i] == l1_active_set.SOLVED:
            np.testing.assert_array_equal(x[i], w[i].numpy())
    assert (status == l1_active_set.SOLVED).sum() >= B - 1
    # The batch reaches every kind of fixed asset and both rows (else the test proves less).
    from gradfolio.solvers.qp._l1_kernels import AT_HI, AT_LO, AT_PREV, AT_ZERO

    assert on[:, 1].any() and on[:, 0].any()
    for k in (AT_LO, AT_HI, AT_ZERO, AT_PREV) if n > 8 else (AT_LO, AT_HI, AT_PREV):
        assert (kind == k).any(), f"no asset of kind {k}"
    # Multipliers of active rows are nonnegative; an inactive row has none.
    assert (lam[:, -2:][on] >= -1e-9).all() and (lam[:, -2:][~on] == 0).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n=st.integers(3, 12), budget=st.sampled_from([1.0, 0.6, None]),
       lower=st.sampled_from([None, -0.3, 0.0]), upper=st.sampled_from([None, 0.45, 0.8]),
       leverage=st.sampled_from([None, 1.0, 1.35, 2.5]), turnover=st.sampled_from([None, 0.05, 0.4, 1.5]),
       group=st.booleans(), zero_prev=st.booleans(), alpha=st.sampled_from([0.0, 0.02]), drift=st.sampled_from([0.0, 0.3]))
def test_random_specs_match_clarabel(refs, seed, n, budget, lower, upper, leverage, turnover, group, zero_prev, alpha,
                                     drift):
    assume(leverage is not None or turnover is not None)
    groups = [Group(list(range(n // 2)), lower=-0.2, upper=0.5)] if group else []
    pc = PortfolioConstraints(budget=budget, lower=lower, upper=upper, leverage=leverage, turnover=turnover,
                              groups=groups)
    try:
        pc.check(n)
    except InfeasibleError:
        assume(False)
    gen = torch.Generator().manual_seed(seed)
    cov = refs.cov(gen, 2, n, 100.0)
    mu = 0.05 * torch.randn(2, n, generator=gen, dtype=f64)
    # A feasible previous portfolio: the spec's own solution without turnover for other returns
    # (with some exact zeros when zero_prev).
    base = replace(pc, turnover=None)
    other = 0.05 * torch.randn(2, n, generator=gen, dtype=f64) - (1.0 if zero_prev else 0.0) * (torch.arange(n) % 2)
    w_prev = ConvexProblem(n, base).solve(other, cov=cov, gamma=2.0, alpha=0.01).detach() if turnover else None
    if w_prev is not None and drift:  # drifted by returns: may break bounds and group limits
        w_prev = w_prev * torch.exp(drift * torch.randn(2, n, generator=gen, dtype=f64))
    refs_w = [refs.portfolio(pc, mu[i].numpy(), cov[i].numpy(), 3.0, alpha, None if w_prev is None else w_prev[i].numpy())
              for i in range(2)]
    assume(all(r is not None for r in refs_w))  # a drift beyond the turnover limit's reach: infeasible
    prob = ConvexProblem(n, pc)
    start = torch.full((1, n), 0.0 if budget is None else budget / n, dtype=f64)  # the layer's start without turnover
    x, status, *_ = kernel_run(3.0 * cov + alpha * torch.eye(n, dtype=f64), -mu, w_prev if w_prev is not None else start,
                               prob.l1_spec)
    w = prob.solve(mu, cov=cov, gamma=3.0, alpha=alpha, w_prev=w_prev)
    for i in range(2):
        np.testing.assert_allclose(w[i].numpy(), refs_w[i], atol=2e-7)
        if status[i] == l1_active_set.SOLVED:  # what the kernels solved is what the layer returns
            np.testing.assert_array_equal(x[i], w[i].numpy())
    assert (status == l1_active_set.SOLVED).all()


def test_drifted_previous_weights_on_real_data(refs):
    # A rebalancing sequence on the bundled S&P 500 returns: each date's previous weights are the
    # last solution drifted by five days of returns, so they break max weight and group limits
    # (the primal method cannot start there; the warm primal-dual start of solve_element does).
    # A fixed asset at w_prev beyond its bound once passed the KKT check: this test caught it.
    from gradfolio.data import load_prices, to_returns

    n, dates = 20, 12
    rets = torch.tensor(to_returns(load_prices("sp500").iloc[:, :n], "log").to_numpy())
    starts = list(range(300, 300 + 5 * dates, 5))
    mu, cov = refs.sp500(n, starts)
    pc = PortfolioConstraints(lower=-0.05, max_weight=0.1, leverage=1.5, turnover=0.5,
                              groups=[Group(list(range(4)), upper=0.3), Group(list(range(4, 8)), lower=0.1, upper=0.4)])
    prob = ConvexProblem(n, pc)
    w = torch.full((1, n), 1.0 / n, dtype=f64)
    broken = 0
    for d in range(dates):
        x, status, *_ = kernel_run(5.0 * cov[d:d + 1] + 0.01 * torch.eye(n, dtype=f64), -mu[d:d + 1], w, prob.l1_spec)
        ref = refs.portfolio(pc, mu[d].numpy(), cov[d].numpy(), 5.0, 0.01, w[0].numpy())
        assert status[0] == l1_active_set.SOLVED
        np.testing.assert_allclose(x[0], ref, atol=1e-7)
        broken += int(bool((w > 0.1 + 1e-9).any()))
        w = torch.from_numpy(x) * torch.exp(rets[starts[d] + 252:starts[d] + 257].sum(0))[None]
        w = w / w.sum()
    assert broken >= dates // 2  # most dates start from weights past a limit


@pytest.mark.parametrize("spec", [PortfolioConstraints(lower=-0.3, upper=0.6, leverage=1.6, turnover=0.7),
                                  PortfolioConstraints(leverage=1.3),
                                  PortfolioConstraints(budget=None, leverage=1.0, turnover=0.5)])
def test_singular_risk_model_is_solved_in_the_kernels(refs, spec):
    # A 3-factor model of 8 assets with alpha = 0: Q has rank 3. The augmented Lagrangian weight
    # (Q_FF + rho C'C) keeps the systems factorable; without it every element went to the fallback.
    n = 8
    gen = torch.Generator().manual_seed(3)
    F = 0.3 * torch.randn(6, 3, n, generator=gen, dtype=f64)
    mu = 0.05 * torch.randn(6, n, generator=gen, dtype=f64)
    w_prev = torch.softmax(torch.randn(6, n, generator=gen, dtype=f64), -1)
    prob = ConvexProblem(n, spec)
    cov = F.mT @ F
    start = w_prev if spec.turnover else torch.full((1, n), (spec.budget or 0.0) / n, dtype=f64)
    x, status, *_ = kernel_run(2.0 * cov, -mu, start, prob.l1_spec)
    assert (status == l1_active_set.SOLVED).all()
    w = prob.solve(mu, factor=F, gamma=2.0, w_prev=w_prev)
    np.testing.assert_array_equal(w.numpy(), x)
    for i in range(6):
        np.testing.assert_allclose(x[i], refs.portfolio(spec, mu[i].numpy(), cov[i].numpy(), 2.0, 0.0, w_prev[i].numpy()),
                                   atol=1e-8)


def _fd_case(n: int = 8):
    pc = PortfolioConstraints(lower=-0.2, max_weight=0.4, leverage=1.15, turnover=0.9,
                              groups=[Group([0, 1, 2], upper=0.45)])
    gen = torch.Generator().manual_seed(6)
    F = 0.3 * torch.randn(2, 5, n, generator=gen, dtype=f64)
    mu = 0.3 * torch.randn(2, n, generator=gen, dtype=f64)
    # No previous weight at zero: where the two kinks coincide the map is not differentiable.
    w_prev = torch.softmax(torch.randn(2, n, generator=gen, dtype=f64), -1)
    return pc, gen, F, mu, w_prev


def test_gradients_match_finite_differences_through_every_kind(refs):
    pc, gen, F, mu, w_prev = _fd_case()
    n = mu.shape[1]
    prob = ConvexProblem(n, pc, settings=QPSettings(tol=1e-10))
    cov = F.mT @ F
    _, status, kind, _, on, _ = kernel_run(2.5 * cov + 0.03 * torch.eye(n, dtype=f64), -mu, w_prev, prob.l1_spec, 1e-10)
    assert (status == 0).all() and on.all()
    assert {2, 3, 4} <= set(np.unique(kind).tolist()), "the case must fix assets at a bound, at zero and at w_prev"
    c = torch.randn(2, n, generator=gen, dtype=f64)
    gamma = torch.tensor([2.5, 2.5], dtype=f64)
    alpha = torch.tensor([0.03, 0.03], dtype=f64)

    def f(mu, F, gamma, alpha, w_prev):
        return (prob.solve(mu, factor=F, gamma=gamma, alpha=alpha, w_prev=w_prev) * c).sum()

    for idx in range(5):
        refs.fd(f, [mu, F, gamma, alpha, w_prev], idx, gen, eps=1e-6, atol=1e-12)


def test_gradient_of_w_prev_at_kinks_is_exact():
    # An asset fixed at its previous weight moves one for one with it: dw_i/dc_i = 1 on the kink
    # and the other weights absorb it through the budget and the turnover row.
    pc, gen, F, mu, w_prev = _fd_case()
    n = mu.shape[1]
    prob = ConvexProblem(n, pc)
    cov = (F.mT @ F)[:1]
    _, _, kind, *_ = kernel_run(2.5 * cov + 0.03 * torch.eye(n, dtype=f64), -mu[:1], w_prev[:1], prob.l1_spec)
    j = int(np.flatnonzero(kind[0] == 4)[0])
    c = w_prev[:1].clone().requires_grad_(True)
    w = prob.solve(mu[:1], cov=cov, gamma=2.5, alpha=0.03, w_prev=c)
    (g,) = torch.autograd.grad(w[0, j], c, retain_graph=True)
    assert g[0, j].item() == pytest.approx(1.0, abs=1e-12)  # w_j = c_j on the kink
    assert g.abs().sum().item() == pytest.approx(1.0, abs=1e-12)  # and on nothing else
    # The other weights move with c_j (budget, turnover row): the column of the Jacobian vs
    # central differences.
    jac = torch.stack([torch.autograd.grad(w[0, i], c, retain_graph=True)[0][0, j] for i in range(n)])
    eps = 1e-6
    cp_, cm = w_prev[:1].clone(), w_prev[:1].clone()
    cp_[0, j] += eps
    cm[0, j] -= eps
    fd = (prob.solve(mu[:1], cov=cov, gamma=2.5, alpha=0.03, w_prev=cp_)[0]
          - prob.solve(mu[:1], cov=cov, gamma=2.5, alpha=0.03, w_prev=cm)[0]) / (2 * eps)
    assert (jac.abs() > 1e-3).sum() > 1
    torch.testing.assert_close(jac, fd, atol=1e-6, rtol=0)


def test_bits_do_not_depend_on_the_batch(refs):
    n, B = 12, 5
    pc = long_short(n)
    gen = torch.Generator().manual_seed(11)
    cov = refs.cov(gen, B, n, 50.0)
    mu = (0.03 * torch.randn(B, n, generator=gen, dtype=f64)).requires_grad_(True)
    w_prev = torch.full((B, n), 1.0 / n, dtype=f64)
    prob = ConvexProblem(n, pc)
    w = prob.solve(mu, cov=cov, gamma=3.0, w_prev=w_prev)
    (gb,) = torch.autograd.grad((w * torch.arange(1.0, n + 1, dtype=f64)).sum(), mu)
    for i in range(B):
        mi = mu[i:i + 1].detach().clone().requires_grad_(True)
        wi = prob.solve(mi, cov=cov[i:i + 1], gamma=3.0, w_prev=w_prev[i:i + 1])
        assert torch.equal(wi[0], w[i])
        (gi,) = torch.autograd.grad((wi * torch.arange(1.0, n + 1, dtype=f64)).sum(), mi)
        assert torch.equal(gi[0], gb[i])


def test_unsolved_elements_go_to_the_standard_form(refs, monkeypatch):
    # With no solves allowed every element is left to the fallback; the weights and gradients are
    # the standard form's (to its tolerance), and the fallback sees exactly the left elements.
    n, B = 8, 3
    pc = long_short(n)
    gen = torch.Generator().manual_seed(5)
    cov = refs.cov(gen, B, n, 20.0)
    mu = 0.03 * torch.randn(B, n, generator=gen, dtype=f64)
    w_prev = torch.full((B, n), 1.0 / n, dtype=f64)
    prob = ConvexProblem(n, pc)
    m1 = mu.clone().requires_grad_(True)
    w_fast = prob.solve(m1, cov=cov, gamma=3.0, w_prev=w_prev)
    (g_fast,) = torch.autograd.grad(w_fast[:, 0].sum(), m1)
    seen = []
    standard = prob._solve_standard
    monkeypatch.setattr(prob, "_solve_standard", lambda mu, *a: seen.append(mu.shape[0]) or standard(mu, *a))
    monkeypatch.setattr(l1_active_set, "ITERS", 0)
    monkeypatch.setattr(l1_active_set, "primal_cap", lambda n, mg: 0)
    m2 = mu.clone().requires_grad_(True)
    w_slow = prob.solve(m2, cov=cov, gamma=3.0, w_prev=w_prev)
    (g_slow,) = torch.autograd.grad(w_slow[:, 0].sum(), m2)
    assert seen == [B]
    torch.testing.assert_close(w_slow, w_fast, atol=1e-8, rtol=0)
    torch.testing.assert_close(g_slow, g_fast, atol=1e-6, rtol=1e-6)


def test_dispatch_float32_and_opt_out(refs, monkeypatch):
    n = 6
    pc = PortfolioConstraints(leverage=1.3, lower=-0.4)
    gen = torch.Generator().manual_seed(2)
    cov = refs.cov(gen, 2, n, 10.0)
    mu = 0.05 * torch.randn(2, n, generator=gen, dtype=f64)
    prob = ConvexProblem(n, pc)
    w64 = prob.solve(mu, cov=cov, gamma=2.0)
    w32 = prob.solve(mu.float(), cov=cov.float(), gamma=2.0)  # float32 in, float64 compute (QPSettings)
    assert w32.dtype == torch.float32
    torch.testing.assert_close(w32, w64.float(), atol=1e-6, rtol=0)
    calls = []
    real = l1_active_set.solve_l1
    monkeypatch.setattr(l1_active_set, "solve_l1", lambda *a: calls.append(1) or real(*a))
    prob.solve(mu, cov=cov, gamma=2.0)
    assert calls == [1]
    off = ConvexProblem(n, pc, settings=QPSettings(compiled=False, active_set_iter=0, gap_tol=1e-14))
    torch.testing.assert_close(off.solve(mu, cov=cov, gamma=2.0), w64, atol=1e-8, rtol=0)
    assert calls == [1]  # compiled=False: the standard form only
    # Without turnover a given w_prev is not used (the primal method starts from equal weights).
    wp = torch.full((2, n), 0.5, dtype=f64, requires_grad=True)
    w_with = prob.solve(mu.clone().requires_grad_(True), cov=cov, gamma=2.0, w_prev=wp)
    assert torch.equal(w_with.detach(), w64)
    assert torch.autograd.grad(w_with.sum(), wp, allow_unused=True) == (None,)
    assert ConvexProblem(n, PortfolioConstraints(long_only=True)).l1_spec is None
    assert ConvexProblem(n, pc, backend="cvxpylayers").l1_spec is None


def test_solve_l1_shares_c_across_the_batch(refs):
    n = 7
    pc = long_short(n)
    sp = spec_of(pc, n)
    gen = torch.Generator().manual_seed(9)
    Q = 3.0 * refs.cov(gen, 3, n, 10.0)
    q = -0.03 * torch.randn(3, n, generator=gen, dtype=f64)
    c1 = torch.full((1, n), 1.0 / n, dtype=f64, requires_grad=True)
    c3 = c1.detach().expand(3, n).clone().requires_grad_(True)
    nan = lambda idx: torch.full((len(idx), n), float("nan"), dtype=f64)  # noqa: E731
    x1 = solve_l1(Q, q, c1, sp, 1e-9, 1e-11, nan)
    x3 = solve_l1(Q, q, c3, sp, 1e-9, 1e-11, nan)
    assert torch.equal(x1, x3)
    w = torch.arange(1.0, 3 * n + 1, dtype=f64).reshape(3, n)
    (g1,) = torch.autograd.grad((x1 * w).sum(), c1)
    (g3,) = torch.autograd.grad((x3 * w).sum(), c3)
    torch.testing.assert_close(g1, g3.sum(0, keepdim=True), atol=1e-12, rtol=0)
