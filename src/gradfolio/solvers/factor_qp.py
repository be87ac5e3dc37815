"""Long-only portfolio QPs with a factor risk model, solved without forming the ``N x N`` matrix.

Every batch element solves::

    min  1/2 w'(L L' + diag(d)) w + q'w     s.t.  1'w = 1,  w >= 0

with loadings ``L (B, N, K)`` (``S = B F B' + D`` is passed as ``L = B chol(F)``,
``d = diag(D)``). A primal-dual interior-point method (Mehrotra predictor-corrector) solves the
Newton systems ``(diag(g) + L L') x = r`` by the Woodbury identity: one ``K x K`` Cholesky factor
and ``O(N K^2)`` work per iteration, ``O(N K)`` memory, batched over ``B`` on any device.

The solution is differentiable with respect to ``q``, ``L`` and ``d`` (a custom backward: the
KKT conditions on the free set ``{w_i > z_i}``, again solved by Woodbury; OptNet's formulas
with ``dQ = 1/2 (dw w' + w dw')`` contracted with ``L`` so that no ``N x N`` matrix appears).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfolio.errors import ConfigError, SolverError


def _woodbury(g: Tensor, L: Tensor, r: Tensor) -> Tensor:
    """``(diag(g) + L L')^-1 r`` for ``g (B, N) > 0``, ``L (B, N, K)``, ``r (B, N, m)``."""
    gi = 1.0 / g
    Lg = L * gi[..., None]  # D^-1 L
    K = L.shape[-1]
    cap = torch.eye(K, dtype=L.dtype, device=L.device) + L.mT @ Lg  # I + L'D^-1 L
    chol = torch.linalg.cholesky(cap)
    y = gi[..., None] * r
    return y - Lg @ torch.cholesky_solve(L.mT @ y, chol)


def _kkt_solve(g: Tensor, L: Tensor, a: Tensor, rx: Tensor, rp: Tensor) -> tuple[Tensor, Tensor]:
    """Solve ``[M a; a' 0][x; nu] = [rx; rp]`` with ``M = diag(g) + LL'``; ``a, rx (B, N)``, ``rp (B,)``."""
    sol = _woodbury(g, L, torch.stack([rx, a], dim=-1))
    Mr, Ma = sol[..., 0], sol[..., 1]
    nu = ((a * Mr).sum(-1) - rp) / (a * Ma).sum(-1)
    return Mr - nu[:, None] * Ma, nu


def _ipm(q: Tensor, L: Tensor, d: Tensor, tol: float, max_iter: int) -> tuple[Tensor, Tensor, Tensor]:
    B, N = q.shape
    a = torch.ones_like(q)
    x = torch.full_like(q, 1.0 / N)
    z = torch.ones_like(q)
    nu = torch.zeros(B, dtype=q.dtype, device=q.device)
    for _ in range(max_iter):
        Hx = d * x + (L @ (L.mT @ x[..., None]))[..., 0]
        rd = Hx + q + nu[:, None] * a - z
        rp = x.sum(-1) - 1.0
        mu = (x * z).mean(-1)
        scale = 1.0 + q.abs().amax(-1)
        if bool(((rd.abs().amax(-1) / scale < tol) & (rp.abs() < tol) & (mu < tol * 1e-2)).all()):
            return x, z, nu
        g = d + z / x
        # predictor (affine scaling)
        dx, dnu = _kkt_solve(g, L, a, -rd - z, -rp)
        dz = -z - z / x * dx
        alpha_p = _step(x, dx)
        alpha_d = _step(z, dz)
        mu_aff = ((x + alpha_p[:, None] * dx) * (z + alpha_d[:, None] * dz)).mean(-1)
        sigma = (mu_aff / mu).clamp(0.0, 1.0) ** 3
        # corrector
        target = sigma * mu
        rc = -z + target[:, None] / x - dx * dz / x
        dx, dnu = _kkt_solve(g, L, a, -rd + rc, -rp)
        dz = rc - z / x * dx
        alpha_p = 0.99 * _step(x, dx)
        alpha_d = 0.99 * _step(z, dz)
        x = x + alpha_p[:, None] * dx
        nu = nu + alpha_d * dnu
        z = z + alpha_d[:, None] * dz
    bad = [int(i) for i in ((x * z).mean(-1) >= tol).nonzero().flatten()][:5]
    raise SolverError(
        f"solve_factor_qp: no convergence in {max_iter} iterations (batch elements {bad}); "
        "raise max_iter or check that the loadings and specific variances are finite."
    )


def _step(v: Tensor, dv: Tensor) -> Tensor:
    """Largest ``alpha <= 1`` with ``v + alpha dv >= 0`` per batch element."""
    ratio = torch.where(dv < 0, -v / dv, torch.full_like(v, float("inf")))
    return ratio.amin(-1).clamp(max=1.0)


class _FactorQP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, L: Tensor, d: Tensor, tol: float, max_iter: int) -> Tensor:  # type: ignore[override]
        scale = (d + (L * L).sum(-1)).mean(-1)  # mean variance: a well-scaled problem
        s = scale[:, None]
        x, z, _ = _ipm(q / s, L / s[..., None].sqrt(), d / s, tol, max_iter)
        free = x > z
        w = torch.where(free, x, torch.zeros_like(x))
        w = w / w.sum(-1, keepdim=True)
        ctx.save_for_backward(w, free, L, d, scale)
        return w

    @staticmethod
    def backward(ctx, grad_w: Tensor):  # type: ignore[override]
        w, free, L, d, scale = ctx.saved_tensors
        f = free.to(w.dtype)
        # KKT on the free set: (diag(d) + LL')_FF dx + a_F dnu = -g_F, a_F'dx = 0, dx = 0 off F,
        # as diag + low rank: rows of L off F zeroed, a unit diagonal there
        g = torch.where(free, d, torch.ones_like(d))
        dx, _ = _kkt_solve(g, L * f[..., None], f, -grad_w * f, torch.zeros_like(scale))
        dx = dx * f
        grad_q = dx
        grad_d = dx * w  # dQ = 1/2 (dx w' + w dx') on the diagonal
        grad_L = dx[..., None] * (w[..., None, :] @ L) + w[..., None] * (dx[..., None, :] @ L)
        return grad_q, grad_L, grad_d, None, None


def solve_factor_qp(q: Tensor, loadings: Tensor, specific: Tensor, tol: float = 1e-10, max_iter: int = 100) -> Tensor:
    """Solve ``min 1/2 w'(LL' + diag(d))w + q'w`` s.t. ``1'w = 1``, ``w >= 0`` for every batch element.

    Parameters
    ----------
    q
        Linear terms ``(B, N)`` (e.g. ``-mu / gamma``).
    loadings
        ``L (B, N, K)``: the factor part of the covariance is ``L L'`` (``L = B chol(F)`` for
        factor exposures ``B`` and factor covariance ``F``).
    specific
        ``d (B, N) > 0``: specific (idiosyncratic) variances.
    tol
        Tolerance on the scaled residuals and complementarity.
    max_iter
        Interior-point iterations allowed.

    Returns
    -------
    ``w (B, N)`` in the dtype of ``q``, differentiable with respect to ``q``, ``loadings`` and
    ``specific``. Memory ``O(B N K)``: no ``N x N`` matrix is formed.

    Raises
    ------
    ConfigError
        Inconsistent shapes, or a specific variance that is not positive.
    SolverError
        No convergence within ``max_iter``.
    """
    if q.ndim != 2 or loadings.ndim != 3 or loadings.shape[:2] != q.shape or specific.shape != q.shape:
        raise ConfigError(
            f"solve_factor_qp: expected q (B, N), loadings (B, N, K), specific (B, N); got {tuple(q.shape)}, "
            f"{tuple(loadings.shape)}, {tuple(specific.shape)}."
        )
    if not bool((specific > 0).all()):
        raise ConfigError("solve_factor_qp: every specific variance must be positive; floor them (e.g. at 1e-10).")
    dtype = q.dtype
    w = _FactorQP.apply(q.double(), loadings.double(), specific.double(), tol, max_iter)
    return w.to(dtype)


__all__ = ["solve_factor_qp"]
