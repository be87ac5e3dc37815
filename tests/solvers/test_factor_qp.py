"""The factor-form QP against the dense batched QP and cvxpy + Clarabel, forward and backward."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch

from gradfolio.errors import ConfigError
from gradfolio.solvers import solve_qp
from gradfolio.solvers.factor_qp import solve_factor_qp


def _problem(B: int = 3, N: int = 40, K: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    L = torch.randn(B, N, K, generator=gen, dtype=torch.float64) * 0.01
    d = torch.rand(B, N, generator=gen, dtype=torch.float64) * 1e-4 + 2e-5
    q = -torch.randn(B, N, generator=gen, dtype=torch.float64) * 1e-3 / 7.0
    return q, L, d


def _dense(q, L, d):
    N = q.shape[-1]
    eye = torch.eye(N, dtype=q.dtype)
    Q = L @ L.mT + torch.diag_embed(d)
    s = 1e-4
    return solve_qp(Q / s, q / s, G=-eye, h=torch.zeros(N, dtype=q.dtype), A=torch.ones(1, N, dtype=q.dtype),
                    b=torch.ones(1, dtype=q.dtype))


def test_matches_clarabel_and_dense_qp() -> None:
    q, L, d = _problem()
    w = solve_factor_qp(q, L, d)
    torch.testing.assert_close(w, _dense(q, L, d), rtol=0, atol=1e-8)
    for b in range(q.shape[0]):
        x = cp.Variable(q.shape[1], nonneg=True)
        y = L[b].numpy().T @ x
        obj = 0.5 * cp.sum_squares(y) + 0.5 * cp.sum(cp.multiply(d[b].numpy(), cp.square(x))) + q[b].numpy() @ x
        cp.Problem(cp.Minimize(obj * 1e4), [cp.sum(x) == 1]).solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12)
        np.testing.assert_allclose(w[b].numpy(), x.value, atol=1e-6)
    assert bool((w >= 0).all()) and int((w > 1e-9).sum()) < w.numel()  # some bounds active


def test_gradients_match_the_dense_qp_and_finite_differences() -> None:
    q, L, d = _problem(B=2, N=25, K=3, seed=1)
    c = torch.randn(2, 25, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    leaves = [t.clone().requires_grad_(True) for t in (q, L, d)]
    (solve_factor_qp(*leaves) * c).sum().backward()
    dense = [t.clone().requires_grad_(True) for t in (q, L, d)]
    (_dense(*dense) * c).sum().backward()
    for ours, ref in zip(leaves, dense):
        torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-6, atol=1e-8 * float(ref.grad.abs().max()))
    # a directional finite difference in the loadings
    direction = torch.randn(L.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 1e-3
    eps = 1e-4
    fd = ((solve_factor_qp(q, L + eps * direction, d) - solve_factor_qp(q, L - eps * direction, d)) * c).sum() / (2 * eps)
    assert float((leaves[1].grad * direction).sum()) == pytest.approx(float(fd), rel=1e-4)


def test_float32_and_errors() -> None:
    q, L, d = _problem()
    w32 = solve_factor_qp(q.float(), L.float(), d.float())
    assert w32.dtype == torch.float32
    torch.testing.assert_close(w32.double(), solve_factor_qp(q, L, d), rtol=0, atol=1e-5)
    with pytest.raises(ConfigError, match="specific variance"):
        solve_factor_qp(q, L, torch.zeros_like(d))
    with pytest.raises(ConfigError, match=r"loadings \(B, N, K\)"):
        solve_factor_qp(q, L[:, :-1], d)
