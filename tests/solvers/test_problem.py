"""ConvexProblem: weights vs cvxpy + Clarabel and gradients vs finite differences, every constraint type."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from gradfolio.errors import ConfigError
from gradfolio.solvers import ConvexProblem, Group, PortfolioConstraints, QPSettings
from gradfolio.solvers.problem import AUX_ACTIVE_SET_VARS, default_settings
from gradfolio.solvers.qp.standard_form import bound_rows

N = 8
SPECS = {
    "budget": PortfolioConstraints(),
    "long_only": PortfolioConstraints(long_only=True),
    "bounds_max_weight": PortfolioConstraints(lower=-0.2, upper=[0.5] * 4 + [0.3] * 4, max_weight=0.4),
    "groups": PortfolioConstraints(groups=[Group([0, 1, 2], -0.1, 0.1, "banks"), Group([3, 4], lower=0.3)]),
    "leverage": PortfolioConstraints(leverage=1.4),
    "turnover": PortfolioConstraints(long_only=True, turnover=0.3),
    "all": PortfolioConstraints(lower=-0.3, upper=0.6, leverage=1.8, turnover=1.0, groups=[Group([0, 1], -0.2, 0.2)]),
    "no_budget_leverage": PortfolioConstraints(budget=None, leverage=1.0),
}


def inputs(gen, refs, B=3, cond=10.0):
    mu = 0.05 * torch.randn(B, N, generator=gen, dtype=torch.float64)
    cov = refs.cov(gen, B, N, cond)
    w_prev = torch.softmax(torch.randn(B, N, generator=gen, dtype=torch.float64), -1)
    return mu, cov, w_prev


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("cond", [10.0, 1e5])
def test_weights_match_clarabel(gen, refs, name, cond):
    spec = SPECS[name]
    mu, cov, w_prev = inputs(gen, refs, cond=cond)
    gamma, alpha = 3.0, 0.01
    w = ConvexProblem(N, spec).solve(mu, cov=cov, gamma=gamma, alpha=alpha, w_prev=w_prev)
    for i in range(mu.shape[0]):
        ref = refs.portfolio(spec, mu[i].numpy(), cov[i].numpy(), gamma, alpha, w_prev[i].numpy())
        np.testing.assert_allclose(w[i].numpy(), ref, atol=1e-6)


@pytest.mark.parametrize("name", ["leverage", "turnover", "all"])
def test_auxiliary_variable_specs_start_in_the_interior_point_and_match_either_way(gen, refs, monkeypatch, name):
    # Leverage and turnover default to the interior point first (default_settings); the
    # active-set method first (QPSettings()) reaches the same weights.
    spec = SPECS[name]
    assert default_settings(spec).active_set_iter == 0
    assert ConvexProblem(N, spec).settings.active_set_iter == 0
    assert ConvexProblem(N, spec, settings=QPSettings()).settings.active_set_iter == QPSettings().active_set_iter
    # On the CPU a small spec with bound rows starts in the compiled active-set method (8 assets:
    # 16-24 variables, at most AUX_ACTIVE_SET_VARS); a large one in the interior point.
    small = ConvexProblem(N, spec)
    has_bounds = bool(bound_rows(torch.as_tensor(small.compiled.G)).any())
    assert small.compiled.n_vars <= AUX_ACTIVE_SET_VARS
    assert small.cpu_settings.active_set_iter == (QPSettings().active_set_iter if has_bounds else 0)
    assert small.cpu_settings.gap_tol == 1e-14
    n_big = AUX_ACTIVE_SET_VARS // 2 + 1  # [w, t] or [w, u]: more than AUX_ACTIVE_SET_VARS variables
    assert ConvexProblem(n_big, spec).cpu_settings.active_set_iter == 0
    assert ConvexProblem(N, spec, settings=QPSettings(active_set_iter=3)).cpu_settings.active_set_iter == 3
    import gradfolio.solvers.qp.compiled as compiled

    from gradfolio.solvers.qp import l1_active_set

    # The standard form x = [w, t, u] is the fallback of the N-variable kernels
    # (test_l1_active_set.py): with no solves allowed there, every element comes here.
    monkeypatch.setattr(l1_active_set, "ITERS", 0)
    monkeypatch.setattr(l1_active_set, "primal_cap", lambda n, mg: 0)
    calls = []
    real = compiled.solve_elements
    monkeypatch.setattr(compiled, "solve_elements", lambda *a: calls.append(1) or real(*a))
    mu, cov, w_prev = inputs(gen, refs)
    w_small = small.solve(mu, cov=cov, gamma=3.0, alpha=0.01, w_prev=w_prev)
    assert len(calls) == int(has_bounds)
    for i in range(mu.shape[0]):
        ref = refs.portfolio(spec, mu[i].numpy(), cov[i].numpy(), 3.0, 0.01, w_prev[i].numpy())
        np.testing.assert_allclose(w_small[i].numpy(), ref, atol=1e-6)
    mu, cov, w_prev = inputs(gen, refs)
    w = ConvexProblem(N, spec, settings=QPSettings()).solve(mu, cov=cov, gamma=3.0, alpha=0.01, w_prev=w_prev)
    for i in range(mu.shape[0]):
        ref = refs.portfolio(spec, mu[i].numpy(), cov[i].numpy(), 3.0, 0.01, w_prev[i].numpy())
        np.testing.assert_allclose(w[i].numpy(), ref, atol=1e-6)
    assert default_settings(SPECS["groups"]) == QPSettings()


def test_factor_equals_covariance(gen):
    F = 0.2 * torch.randn(4, 3, N, generator=gen, dtype=torch.float64)
    mu = 0.05 * torch.randn(4, N, generator=gen, dtype=torch.float64)
    prob = ConvexProblem(N, SPECS["long_only"])
    torch.testing.assert_close(prob.solve(mu, factor=F, alpha=0.1), prob.solve(mu, cov=F.mT @ F, alpha=0.1))


@pytest.mark.parametrize("name", ["long_only", "groups", "leverage", "turnover", "all"])
def test_gradients_match_finite_differences(gen, refs, name):
    # Tight solves: near a weakly active constraint the default gap_tol=1e-12 leaves ~1e-4
    # relative error in a gradient, and the finite differences need accurate solutions too.
    prob = ConvexProblem(N, SPECS[name], settings=QPSettings(tol=1e-11, gap_tol=1e-14, max_iter=80))
    mu, _, w_prev = inputs(gen, refs, B=2)
    F = 0.3 * torch.randn(2, 4, N, generator=gen, dtype=torch.float64)
    gamma = torch.tensor([2.0, 5.0], dtype=torch.float64)
    alpha = torch.tensor([0.05, 0.2], dtype=torch.float64)
    c = torch.randn(2, N, generator=gen, dtype=torch.float64)

    def f(mu, F, gamma, alpha, w_prev):
        return (prob.solve(mu, factor=F, gamma=gamma, alpha=alpha, w_prev=w_prev) * c).sum()

    for idx in range(5 if SPECS[name].turnover is not None else 4):
        refs.fd(f, [mu, F, gamma, alpha, w_prev], idx, gen, eps=1e-4)


def test_covariance_gradient(gen, refs):
    prob = ConvexProblem(N, SPECS["bounds_max_weight"])
    mu, cov, _ = inputs(gen, refs, B=2)
    c = torch.randn(2, N, generator=gen, dtype=torch.float64)
    refs.fd(lambda mu, cov: (prob.solve(mu, cov=0.5 * (cov + cov.mT), gamma=4.0) * c).sum(), [mu, cov], 1, gen)


def test_cvxpylayers_backend_matches(gen, refs):
    spec = SPECS["all"]
    mu, cov, w_prev = inputs(gen, refs, B=2)
    F = torch.linalg.cholesky(cov).mT.contiguous()
    mu_q, mu_c = mu.clone().requires_grad_(), mu.clone().requires_grad_()
    wq = ConvexProblem(N, spec).solve(mu_q, factor=F, gamma=2.0, alpha=0.1, w_prev=w_prev)
    wc = ConvexProblem(N, spec, backend="cvxpylayers").solve(mu_c, factor=F, gamma=2.0, alpha=0.1, w_prev=w_prev)
    torch.testing.assert_close(wc, wq, atol=1e-5, rtol=0)
    c = torch.randn(2, N, generator=gen, dtype=torch.float64)
    (wq * c).sum().backward()
    (wc * c).sum().backward()
    torch.testing.assert_close(mu_c.grad, mu_q.grad, atol=1e-3 * mu_q.grad.abs().max().item(), rtol=0)


def test_cvxpylayers_extra_constraints(gen, refs):
    mu, cov, _ = inputs(gen, refs, B=2)
    extra = lambda w: [w[0] + w[1] <= 0.05, cp.norm(w, 2) <= 0.6]  # noqa: E731
    w = ConvexProblem(N, SPECS["long_only"], backend="cvxpylayers", cvxpy_constraints=extra).solve(mu, cov=cov, gamma=2.0)
    for i in range(2):
        x = cp.Variable(N)
        cons = [cp.sum(x) == 1, x >= 0] + extra(x)
        cp.Problem(cp.Minimize(cp.quad_form(x, cov[i].numpy()) - mu[i].numpy() @ x), cons).solve(solver="CLARABEL")
        np.testing.assert_allclose(w[i].detach().numpy(), x.value, atol=1e-5)


def test_input_errors(gen, refs):
    mu, cov, _ = inputs(gen, refs)
    prob = ConvexProblem(N, SPECS["turnover"])
    with pytest.raises(ConfigError, match="w_prev"):
        prob.solve(mu, cov=cov)
    with pytest.raises(ConfigError, match="exactly one of cov"):
        ConvexProblem(N).solve(mu)
    with pytest.raises(ConfigError, match="gamma must be >= 0"):
        ConvexProblem(N).solve(mu, cov=cov, gamma=-1.0)
    with pytest.raises(ConfigError, match="cvxpy_constraints need"):
        ConvexProblem(N, cvxpy_constraints=lambda w: [])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), max_weight=st.floats(0.15, 1.0), gamma=st.floats(0.1, 50.0))
def test_long_only_properties(seed, max_weight, gamma):
    g = torch.Generator().manual_seed(seed)
    F = torch.randn(5, 3, N, generator=g, dtype=torch.float64) * 0.2
    mu = torch.randn(5, N, generator=g, dtype=torch.float64) * 0.1
    w = ConvexProblem(N, PortfolioConstraints(long_only=True, max_weight=max_weight)).solve(mu, factor=F, gamma=gamma, alpha=1e-3)
    assert (w >= -1e-8).all() and (w <= max_weight + 1e-8).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(5, dtype=torch.float64))


def _bench_specs(n):
    # The constraint sets of the solver benchmark (benchmarks/qp_peers.py) at small n.
    k, mw = max(2, n // 5), max(0.1, 2.0 / n)
    groups = [Group(list(range(k)), upper=0.2, name="g1"), Group(list(range(k, 2 * k)), lower=0.15, upper=0.35, name="g2")]
    return {
        "mw+2groups": PortfolioConstraints(long_only=True, max_weight=mw, groups=groups),
        "mw+2groups+lev+turn": PortfolioConstraints(max_weight=mw, groups=groups, leverage=1.5, turnover=0.5),
    }


@pytest.mark.parametrize("name", ["mw+2groups", "mw+2groups+lev+turn"])
@pytest.mark.parametrize("n", [10, 50])
def test_benchmark_constraint_sets_match_clarabel_to_1e7(refs, name, n):
    # The benchmark's problems: eigenvalues log-spaced over 1e-3..1 (at n = 50 an element of
    # mw+2groups+lev+turn was 3e-6 off with the interior point's default gap_tol; default_settings).
    spec = _bench_specs(n)[name]
    B = 4
    gen = torch.Generator().manual_seed(0)
    Qm, _ = torch.linalg.qr(torch.randn(B, n, n, generator=gen, dtype=torch.float64))
    cov = (Qm * torch.logspace(0, -3, n, dtype=torch.float64)) @ Qm.mT * 0.04
    mu = 0.01 * torch.randn(B, n, generator=gen, dtype=torch.float64)
    w_prev = torch.full((B, n), 1.0 / n, dtype=torch.float64)
    w = ConvexProblem(n, spec).solve(mu, cov=cov, gamma=5.0, alpha=0.01, w_prev=w_prev)
    for i in range(B):
        ref = refs.portfolio(spec, mu[i].numpy(), cov[i].numpy(), 5.0, 0.01, w_prev[i].numpy())
        np.testing.assert_allclose(w[i].numpy(), ref, atol=1e-7)


@pytest.mark.parametrize("name", ["mw+2groups", "mw+2groups+lev+turn"])
@pytest.mark.parametrize("compiled", [True, False])
def test_solves_without_gradients_and_at_batch_1_give_the_bits_of_the_graph_and_the_batch(refs, gen, name, compiled):
    # With nothing to differentiate, ConvexProblem and solve_qp skip their autograd Functions (the
    # batch-1 latency): the weights must be those of the solve that builds the graph. With the
    # compiled kernels an element also gets the bits of the same element in a batch, gradients
    # included; the batched torch method's bits may depend on the batch.
    n, B = 10, 5
    prob = ConvexProblem(n, _bench_specs(n)[name], settings=None if compiled else QPSettings(compiled=False))
    Qm, _ = torch.linalg.qr(torch.randn(B, n, n, generator=gen, dtype=torch.float64))
    cov = (Qm * torch.logspace(0, -3, n, dtype=torch.float64)) @ Qm.mT * 0.04
    mu = 0.01 * torch.randn(B, n, generator=gen, dtype=torch.float64)
    w_prev = torch.full((B, n), 1.0 / n, dtype=torch.float64)  # the benchmark's (a random one can be infeasible)
    c = torch.randn(B, n, generator=gen, dtype=torch.float64)

    def with_grads(sl: slice) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        leaves = [mu[sl].clone(), cov[sl].clone(), torch.full_like(mu[sl, 0], 5.0), torch.full_like(mu[sl, 0], 0.01)]
        m, S, g, a = [t.requires_grad_() for t in leaves]
        w = prob.solve(m, cov=S, gamma=g, alpha=a, w_prev=w_prev[sl])
        return w.detach(), torch.autograd.grad((w * c[sl]).sum(), [m, S, g, a])

    w, grads = with_grads(slice(None))
    with torch.no_grad():
        assert torch.equal(prob.solve(mu, cov=cov, gamma=5.0, alpha=0.01, w_prev=w_prev), w)
    assert torch.equal(prob.solve(mu, cov=cov, gamma=torch.full((B,), 5.0, dtype=torch.float64), alpha=0.01,
                                  w_prev=w_prev), w)  # grad mode on, no input that needs a gradient
    if not compiled:
        return
    for i in (0, 3):
        one = slice(i, i + 1)
        with torch.no_grad():
            assert torch.equal(prob.solve(mu[one], cov=cov[one], gamma=5.0, alpha=0.01, w_prev=w_prev[one])[0], w[i])
        wi, grads_i = with_grads(one)
        assert torch.equal(wi[0], w[i])
        assert all(torch.equal(gi[0], g[i]) for gi, g in zip(grads_i, grads))
    # The gradients at batch 1 against finite differences (cov symmetrized inside).
    one = slice(0, 1)

    def f(m: torch.Tensor, S: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (prob.solve(m, cov=0.5 * (S + S.mT), gamma=g, alpha=0.01, w_prev=w_prev[one]) * c[one]).sum()

    for idx in range(3):
        refs.fd(f, [mu[one], cov[one], torch.full((1,), 5.0, dtype=torch.float64)], idx, gen, eps=1e-6)
