"""The QP solver's intra-op thread rule: small solves on one thread, the count restored afterwards."""

from __future__ import annotations

import pytest
import torch

import gradfolio.solvers.qp.solve as qp_solve
from gradfolio.errors import ConfigError
from gradfolio.solvers import PortfolioConstraints, QPSettings, solve_qp
from gradfolio.solvers.qp.threads import SMALL_WORK, auto_threads, intra_op_threads


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_rule():
    assert auto_threads(32, 50) == 1
    assert auto_threads(1, 10) == 1
    big_batch = SMALL_WORK // (40 * 40) + 1
    assert auto_threads(big_batch, 40) is None  # at the threshold: torch's setting
    assert auto_threads(big_batch - 2, 40) == 1
    assert auto_threads(32, 50, None) is None
    assert auto_threads(32, 50, 3) == 3
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(ConfigError, match="QPSettings.threads"):
            auto_threads(32, 50, bad)


def test_context_sets_and_restores(two_threads):
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with intra_op_threads(None):
        assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), intra_op_threads(1):
        raise RuntimeError("restored on errors too")
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize(("threads", "inside"), [("auto", 1), (None, 2), (3, 3)])
def test_solve_qp_forward_and_backward_use_the_rule(two_threads, monkeypatch, gen, threads, inside):
    seen = []
    forward, adjoint = qp_solve.primal_dual_active_set, qp_solve.ActiveSet.adjoint
    monkeypatch.setattr(qp_solve, "primal_dual_active_set", lambda *a: seen.append(torch.get_num_threads()) or forward(*a))
    monkeypatch.setattr(qp_solve.ActiveSet, "adjoint", lambda self, g: seen.append(torch.get_num_threads()) or adjoint(self, g))
    n = 6
    X = torch.randn(4, 30, n, generator=gen, dtype=torch.float64)
    c = PortfolioConstraints(long_only=True).compile(n).tensors()
    q = torch.randn(4, n, generator=gen, dtype=torch.float64, requires_grad=True)
    x = solve_qp(X.mT @ X / 30, q, c["G"], c["h0"], c["A"], c["b"], QPSettings(threads=threads, compiled=False))
    x[:, 0].sum().backward()
    assert seen == [inside, inside]
    assert torch.get_num_threads() == 2
    torch.testing.assert_close(x.sum(dim=-1), torch.ones(4, dtype=torch.float64))
    assert q.grad is not None and bool(torch.isfinite(q.grad).all())


@pytest.mark.parametrize(("threads", "inside"), [("auto", 1), (None, 2), (3, 3)])
def test_convex_problem_builds_its_inputs_under_the_rule(two_threads, monkeypatch, gen, threads, inside):
    # ConvexProblem forms Q (B, N, N) before solve_qp: those ops run under the same count.
    from gradfolio.solvers import ConvexProblem, problem

    seen = []
    risk = problem.risk_matrix
    monkeypatch.setattr(problem, "risk_matrix", lambda *a: seen.append(torch.get_num_threads()) or risk(*a))
    n = 5
    X = torch.randn(3, 40, n, generator=gen, dtype=torch.float64)
    prob = ConvexProblem(n, PortfolioConstraints(long_only=True), settings=QPSettings(threads=threads))
    mu = torch.randn(3, n, generator=gen, dtype=torch.float64)
    w = prob.solve(mu, cov=X.mT @ X / 40, gamma=3.0)
    assert seen == [inside]
    assert torch.get_num_threads() == 2
    torch.testing.assert_close(w.sum(dim=-1), torch.ones(3, dtype=torch.float64))
    assert bool((w >= -1e-12).all())


@pytest.mark.parametrize(("threads", "inside"), [("auto", 1), (3, 3)])
def test_convex_problem_backward_of_its_inputs_runs_under_the_rule(two_threads, monkeypatch, gen, threads, inside):
    # The backward of Q = gamma S + alpha I (B, n, n elementwise ops) runs under the solve's count
    # too, instead of autograd's process-wide one; its gradients match finite differences.
    from gradfolio.solvers import ConvexProblem, problem

    counts = []
    real = problem.intra_op_threads

    def record(count):
        counts.append(count)
        return real(count)

    monkeypatch.setattr(problem, "intra_op_threads", record)
    n = 5
    X = torch.randn(3, 40, n, generator=gen, dtype=torch.float64)
    S = (X.mT @ X / 40).requires_grad_()
    g = torch.tensor([3.0, 1.5, 0.7], dtype=torch.float64, requires_grad=True)
    prob = ConvexProblem(n, PortfolioConstraints(long_only=True, max_weight=0.4), settings=QPSettings(threads=threads))
    mu = 0.1 * torch.randn(3, n, generator=gen, dtype=torch.float64)
    w = prob.solve(mu, cov=S, gamma=g, alpha=0.02)
    counts.clear()
    c = torch.linspace(-1.0, 0.6, n, dtype=torch.float64)
    (w * c).sum().backward()
    assert counts == [inside]  # the backward of _Quadratic
    assert torch.get_num_threads() == 2
    eps = 1e-6
    with torch.no_grad():
        d = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
        fd = ((prob.solve(mu, cov=S, gamma=g + eps * d, alpha=0.02) - prob.solve(mu, cov=S, gamma=g - eps * d, alpha=0.02))
              * c).sum() / (2 * eps)
    assert float((g.grad * d).sum()) == pytest.approx(float(fd), rel=1e-5, abs=1e-9)
