"""The small-problem path (batch 1, NumPy): same solution and active set as the torch path, same gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradfolio.solvers.qp.solve as qp_solve
from gradfolio.solvers import Group, PortfolioConstraints, QPSettings, solve_qp
from gradfolio.solvers.qp.active_set import primal_dual_active_set
from gradfolio.solvers.qp.small import SMALL_N, solve_single
from gradfolio.solvers.qp.standard_form import Solution, StandardForm

ON = QPSettings(single_numpy=True)  # the NumPy single-problem path is opt-in

SPECS = {
    "long_only": PortfolioConstraints(long_only=True),
    "max_weight_groups": PortfolioConstraints(
        long_only=True, max_weight=0.3, groups=[Group([0, 1, 2], upper=0.25), Group([3, 4], lower=0.2, upper=0.45)]
    ),
    "bounds": PortfolioConstraints(lower=-0.2, upper=[0.5] * 5 + [0.3] * 7, max_weight=0.4),
}


def standard(spec, S, mu, gamma=4.0):
    n = mu.shape[-1]
    c = spec.compile(n).tensors()
    G, h = c["G"], c["h0"]
    perm = torch.argsort(((G != 0).sum(dim=-1) == 1).int(), stable=True)  # as solve_qp orders the rows
    G, h = G[perm], h[perm].expand(mu.shape[0], -1)
    return StandardForm.build(gamma * S, -mu, G, h, c["A"], c["b"].expand(mu.shape[0], -1)), c


@pytest.mark.parametrize("name", SPECS)
def test_same_solution_and_active_set_as_the_torch_path(gen, refs, name):
    # Long-only and bounds: every problem is taken. With group rows the path declines where its
    # update over-fixes the budget and the group rows (the torch path's regularized systems go on):
    # 16-18 of 20 benchmark problems are taken; here at least one of three.
    n, taken = 12, 0
    for _ in range(3):
        S = refs.cov(gen, 1, n, 1e3)
        mu = 0.05 * torch.randn(1, n, generator=gen, dtype=torch.float64)
        form, _ = standard(SPECS[name], S, mu)
        got = solve_single(form, ON)
        if got is None and name == "max_weight_groups":
            continue
        assert got is not None
        taken += 1
        B, n_, m, p = form.shape
        sol = Solution.empty(B, n_, m, p, form.q)
        left, _ = primal_dual_active_set(form, ON, sol)
        assert left.numel() == 0
        torch.testing.assert_close(got[3], sol.act)
        torch.testing.assert_close(got[0], sol.x, atol=1e-9, rtol=0)
        for a, b_ in zip(got[1:3], (sol.y, sol.lam)):  # multipliers: both within the solver tolerance (1e-9)
            torch.testing.assert_close(a, b_, atol=1e-8, rtol=0)
        ref = refs.portfolio(SPECS[name], mu[0].numpy(), S[0].numpy(), 4.0, 0.0)
        np.testing.assert_allclose(got[0][0].numpy(), ref, atol=1e-7)
    assert taken >= 1


def test_declines_what_it_does_not_handle(gen, refs):
    S = refs.cov(gen, 2, 6, 10.0)
    mu = 0.05 * torch.randn(2, 6, generator=gen, dtype=torch.float64)
    form, _ = standard(SPECS["long_only"], S, mu)
    assert solve_single(form, ON) is None  # batch of 2
    one, _ = standard(SPECS["long_only"], S[:1], mu[:1])
    assert solve_single(one, QPSettings(active_set_iter=0, single_numpy=True)) is None  # interior point asked for
    f32, _ = standard(SPECS["long_only"], S[:1].float(), mu[:1].float())
    assert solve_single(f32, ON) is None  # float32 stays on the torch path
    big = SMALL_N + 1
    Sb = torch.eye(big, dtype=torch.float64)
    formb, _ = standard(SPECS["long_only"], Sb[None], 0.01 * torch.randn(1, big, generator=gen, dtype=torch.float64))
    assert solve_single(formb, ON) is None
    # A cap of one solve: the separable guess is not the solution here, so it gives up.
    assert solve_single(one, QPSettings(active_set_iter=1, single_numpy=True)) is None


def test_solve_qp_batch_one_takes_the_path_and_differentiates_like_the_batch(gen, refs, monkeypatch):
    n = 12
    spec = SPECS["max_weight_groups"]
    S = refs.cov(gen, 1, n, 1e2)
    mu = 0.05 * torch.randn(1, n, generator=gen, dtype=torch.float64)
    c = spec.compile(n).tensors()
    c_out = torch.linspace(-1, 2, n, dtype=torch.float64)

    def run(Q, q):
        Q, q = Q.clone().requires_grad_(), q.clone().requires_grad_()
        x = solve_qp(Q, q, c["G"], c["h0"], c["A"], c["b"], settings=ON)
        (x * c_out).sum().backward()
        return x.detach(), Q.grad, q.grad

    calls = []
    real = qp_solve.solve_single
    monkeypatch.setattr(qp_solve, "solve_single", lambda *a: calls.append(1) or real(*a))
    x1, gQ1, gq1 = run(3.0 * S, -mu)
    assert calls == [1]
    # The same problem twice in one batch goes through the torch path.
    x2, gQ2, gq2 = run((3.0 * S).expand(2, -1, -1), -mu.expand(2, -1))
    torch.testing.assert_close(x1[0], x2[0], atol=1e-10, rtol=0)
    torch.testing.assert_close(gq1[0], gq2[0], atol=1e-9, rtol=0)
    torch.testing.assert_close(gQ1[0], gQ2[0], atol=1e-9, rtol=0)


def test_the_numpy_path_is_off_by_default(gen, refs, monkeypatch):
    """By default a single problem goes through the batched torch path, so one date alone gives
    bitwise what the same date gives inside a batch (a backtest and ``predict`` agree)."""
    n = 12
    S = refs.cov(gen, 1, n, 1e2)
    mu = 0.05 * torch.randn(2, n, generator=gen, dtype=torch.float64)
    c = SPECS["max_weight_groups"].compile(n).tensors()
    calls = []
    monkeypatch.setattr(qp_solve, "solve_single", lambda *a: calls.append(1) or None)
    x1 = solve_qp(S, -mu[:1], c["G"], c["h0"], c["A"], c["b"])
    assert calls == [1]  # asked, and it declined
    x2 = solve_qp(S.expand(2, -1, -1), -mu, c["G"], c["h0"], c["A"], c["b"])
    assert torch.equal(x1[0], x2[0])
