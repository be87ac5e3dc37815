"""Shared references for the solver tests: cvxpy + Clarabel at tight tolerance, random problems."""

from __future__ import annotations

from types import SimpleNamespace

import cvxpy as cp
import numpy as np
import pytest
import torch

from gradfolio.data import load_prices, to_returns

TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10}


def clarabel_qp(Q, q, G=None, h=None, A=None, b=None) -> np.ndarray:
    """One QP ``min 1/2 x'Qx + q'x s.t. Ax = b, Gx <= h`` with cvxpy + Clarabel (NumPy in and out)."""
    x = cp.Variable(q.shape[0])
    cons = []
    if G is not None and G.shape[0]:
        cons.append(G @ x <= h)
    if A is not None and A.shape[0]:
        cons.append(A @ x == b)
    cp.Problem(cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(Q)) + q @ x), cons).solve(solver="CLARABEL", **TIGHT)
    return x.value


def clarabel_portfolio(spec, mu, S, gamma, alpha, w_prev=None) -> np.ndarray:
    """The portfolio problem written directly in cvxpy (norm1 for leverage/turnover), independent of compile()."""
    N = mu.shape[0]
    w = cp.Variable(N)
    cons = []
    if spec.budget is not None:
        cons.append(cp.sum(w) == spec.budget)
    lo, hi = spec.bounds(N)
    cons += [w[i] >= lo[i] for i in range(N) if np.isfinite(lo[i])]
    cons += [w[i] <= hi[i] for i in range(N) if np.isfinite(hi[i])]
    for g in spec.groups:
        if g.upper is not None:
            cons.append(cp.sum(w[list(g.assets)]) <= g.upper)
        if g.lower is not None:
            cons.append(cp.sum(w[list(g.assets)]) >= g.lower)
    if spec.leverage is not None:
        cons.append(cp.norm1(w) <= spec.leverage)
    if spec.turnover is not None:
        cons.append(cp.norm1(w - w_prev) <= spec.turnover)
    obj = 0.5 * gamma * cp.quad_form(w, cp.psd_wrap(S)) - mu @ w + 0.5 * alpha * cp.sum_squares(w)
    cp.Problem(cp.Minimize(obj), cons).solve(solver="CLARABEL", **TIGHT)
    return w.value


def random_cov(gen: torch.Generator, B: int, N: int, cond: float) -> torch.Tensor:
    """Covariances ``(B, N, N)`` with condition number ``cond`` (random eigenvectors, log-spaced eigenvalues)."""
    Qm, _ = torch.linalg.qr(torch.randn(B, N, N, generator=gen, dtype=torch.float64))
    eig = torch.logspace(0, -np.log10(cond), N, dtype=torch.float64) * 0.04
    return (Qm * eig) @ Qm.mT


def directional_fd_check(f, args, idx, gen, eps=1e-5, rtol=1e-4, atol=0.0):
    """Compare autograd's directional derivative of scalar ``f(*args)`` w.r.t. ``args[idx]`` with central
    differences (``atol``: for a derivative that is zero, where both sides are round-off)."""
    args = [a.detach().clone().requires_grad_(i == idx) for i, a in enumerate(args)]
    (g,) = torch.autograd.grad(f(*args), [args[idx]])
    v = torch.randn(args[idx].shape, generator=gen, dtype=args[idx].dtype)
    with torch.no_grad():
        plus = [a.detach().clone() for a in args]
        minus = [a.detach().clone() for a in args]
        plus[idx] += eps * v
        minus[idx] -= eps * v
        fd = (f(*plus) - f(*minus)) / (2 * eps)
    an = (g * v).sum()
    # Relative to the directional derivative, floored at 10% of its natural scale |g| |v| (a
    # direction nearly orthogonal to the gradient would otherwise compare round-off).
    scale = max(abs(float(fd)), 0.1 * float(g.norm() * v.norm()))
    assert abs(float(an - fd)) <= rtol * scale + atol, (float(an), float(fd), scale)


def sp500_moments(n: int, starts, lookback: int = 252) -> tuple[torch.Tensor, torch.Tensor]:
    """Annualized sample means ``(B, n)`` and covariances ``(B, n, n)`` (``ddof=1``) of the log returns
    of the first ``n`` bundled S&P 500 stocks over ``lookback``-day windows.

    ``starts``: the windows' first rows, or a count ``B`` of starts drawn at random (seed 0).
    """
    returns = torch.tensor(to_returns(load_prices("sp500").iloc[:, :n], "log").to_numpy())
    if isinstance(starts, int):
        starts = torch.randint(0, len(returns) - lookback, (starts,), generator=torch.Generator().manual_seed(0))
    windows = torch.stack([returns[s : s + lookback] for s in starts])
    centered = windows - windows.mean(dim=1, keepdim=True)
    return windows.mean(dim=1) * 252, centered.mT @ centered / (lookback - 1) * 252


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def refs() -> SimpleNamespace:
    """The helpers above (test modules cannot import conftest under --import-mode=importlib)."""
    return SimpleNamespace(
        qp=clarabel_qp, portfolio=clarabel_portfolio, cov=random_cov, fd=directional_fd_check, sp500=sp500_moments
    )


@pytest.fixture
def interior_point_calls(monkeypatch) -> list[list[int]]:
    """The batch indices handed to the interior point by each ``solve_qp`` call from now on (the
    call still solves them)."""
    import gradfolio.solvers.qp.solve as qp_solve

    handed: list[list[int]] = []
    real = qp_solve.interior_point

    def record(form, settings, out, index, B):
        handed.append(index.tolist())
        real(form, settings, out, index, B)

    monkeypatch.setattr(qp_solve, "interior_point", record)
    return handed
