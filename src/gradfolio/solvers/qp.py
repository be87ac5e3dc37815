"""Batched dense convex QP solver in torch, differentiable by implicit differentiation.

Solves, for every batch element ``b`` at once::

    min_x  1/2 x'Q_b x + q_b'x   s.t.  A_b x = b_b,  G_b x <= h_b

with a primal-dual interior-point method (Mehrotra predictor-corrector). Each Newton step
eliminates the slacks and inequality multipliers, which leaves the ``n x n`` system
``H = Q + G' diag(z/s) G`` (batched Cholesky) plus a ``p x p`` Schur complement for the
equalities; there is no Python loop over batch elements. Every element is checked for
convergence on its own residuals and duality gap, and an element that does not converge
raises :class:`~gradfolio.errors.SolverError` naming it (never NaN weights).

The backward pass differentiates the KKT conditions at the solution (OptNet, Amos & Kolter
2017): one extra solve with the final ``H`` gives the adjoint, from which the gradients of
``Q, q, G, h, A, b`` are formed (``A`` and ``G`` may be shared by the batch, i.e. 2-D).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradfolio.errors import ConfigError, SolverError


@dataclass(frozen=True)
class QPSettings:
    """Interior-point settings.

    Parameters
    ----------
    tol
        Convergence tolerance on the scaled primal and dual residuals; ``None`` picks ``1e-9``
        in float64 and ``1e-5`` in float32.
    gap_tol
        Tolerance on the mean complementarity ``s'z / m`` (it controls the weight accuracy:
        a weakly active bound is off by about its square root); ``None`` picks ``1e-12`` in
        float64 and ``1e-6`` in float32.
    max_iter
        Iteration cap; elements not converged by then raise :class:`SolverError`.
    compute_dtype
        Precision of the interior point and its backward pass. The default ``float64`` runs
        float32 inputs in float64 and casts the result back (the reduced Newton systems become
        too ill-conditioned near the solution for float32 to reach 1e-6 weights); ``None``
        computes in the input dtype (faster on GPUs, float32 stops at ~1e-4 residuals and may
        raise :class:`SolverError` on ill-conditioned problems).
    reg
        Relative diagonal regularization of ``H`` in the Newton steps and the backward solve
        (only makes the linear systems well posed when ``Q`` is singular; the solution is not
        moved because the residuals are computed without it).
    """

    tol: float | None = None
    gap_tol: float | None = None
    compute_dtype: torch.dtype | None = torch.float64
    max_iter: int = 50
    reg: float = 1e-11

    def tolerances(self, dtype: torch.dtype) -> tuple[float, float]:
        """``(tol, gap_tol)`` for ``dtype``."""
        f64 = dtype == torch.float64
        tol = self.tol if self.tol is not None else (1e-9 if f64 else 1e-4)
        gap = self.gap_tol if self.gap_tol is not None else (1e-12 if f64 else 1e-5)
        return float(tol), float(gap)


def _bmtv(M: Tensor, v: Tensor) -> Tensor:
    """``M' @ v`` for ``M (B, r, c)`` or ``(r, c)`` and ``v (B, r)`` -> ``(B, c)``."""
    return v @ M if M.ndim == 2 else (v.unsqueeze(-2) @ M).squeeze(-2)


def _bmv(M: Tensor, v: Tensor) -> Tensor:
    """``M @ v`` for ``M (B, r, c)`` or ``(r, c)`` and ``v (B, c)`` -> ``(B, r)``."""
    return _bmtv(M.transpose(-1, -2), v)


@dataclass(frozen=True)
class _BoundRows:
    """The last rows of a shared ``G`` that have one nonzero each (bounds): column and squared value."""

    first: int
    cols: Tensor
    coef2: Tensor

    @staticmethod
    def find(G: Tensor) -> "_BoundRows | None":
        """Reorder-free detection: the trailing block of single-nonzero rows of a 2-D ``G``."""
        if G.ndim != 2 or not G.shape[0]:
            return None
        single = (G != 0).sum(dim=-1) == 1
        k = int(G.shape[0] - torch.flip(single, [0]).int().cumprod(0).sum())
        if k == G.shape[0]:
            return None
        return _BoundRows(k, G[k:].abs().argmax(dim=-1), G[k:].amax(dim=-1).square() + G[k:].amin(dim=-1).square())


def _gram(Q: Tensor, G: Tensor, d: Tensor, bounds: _BoundRows | None) -> Tensor:
    """``Q + G' diag(d) G`` (batched), the bound rows added as a diagonal."""
    B = d.shape[0]
    if not G.shape[-2]:
        return Q.expand(B, -1, -1).clone()
    k = bounds.first if bounds is not None else G.shape[-2]
    H = Q + (G[..., :k, :].transpose(-1, -2) * d[:, None, :k]) @ G[..., :k, :] if k else Q.expand(B, -1, -1).clone()
    if bounds is not None:
        diag = d.new_zeros(B, G.shape[-1]).index_add_(1, bounds.cols, d[:, k:] * bounds.coef2)
        H.diagonal(dim1=-2, dim2=-1).add_(diag)
    return H


class _KKT:
    """Factorization of ``[[H, A'], [A, 0]]`` with ``H = Q + G' diag(d) G + reg I`` (batched)."""

    def __init__(
        self, Q: Tensor, G: Tensor, d: Tensor, A: Tensor, reg: float, bounds: _BoundRows | None = None
    ) -> None:
        scale = Q.diagonal(dim1=-2, dim2=-1).abs().amax(dim=-1).clamp_min(1.0)
        H = _gram(Q, G, d, bounds)
        H.diagonal(dim1=-2, dim2=-1).add_((reg * scale).unsqueeze(-1))
        L, info = torch.linalg.cholesky_ex(H)
        if bool((info > 0).any()):
            # Nearly singular H for some elements: a larger shift for those only.
            bad = info > 0
            H[bad] += torch.eye(H.shape[-1], dtype=H.dtype, device=H.device) * (1e-8 * scale[bad])[:, None, None]
            L, info = torch.linalg.cholesky_ex(H)
        self.L = L
        self.ok = info == 0
        self.A = A
        self.p = A.shape[-2]
        if self.p:
            self.HiAt = torch.cholesky_solve(A.transpose(-1, -2).expand(H.shape[0], -1, -1), L)
            S = A @ self.HiAt
            self.Ls, info_s = torch.linalg.cholesky_ex(S)
            self.ok = self.ok & (info_s == 0)

    def solve(self, r1: Tensor, r2: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Solve ``H dx + A'dy = r1``, ``A dx = r2`` for ``r1 (B, n)``, ``r2 (B, p)``."""
        v = torch.cholesky_solve(r1.unsqueeze(-1), self.L).squeeze(-1)
        if not self.p:
            return v, None
        dy = torch.cholesky_solve((_bmv(self.A, v) - r2).unsqueeze(-1), self.Ls).squeeze(-1)
        return v - _bmv(self.HiAt, dy), dy


def _max_step(v: Tensor, dv: Tensor) -> Tensor:
    """Largest ``a <= 1`` with ``v + a dv >= 0`` per element (``v > 0``), shape ``(B,)``."""
    ratio = torch.where(dv < 0, -v / dv, torch.full_like(v, float("inf")))
    return ratio.amin(dim=-1).clamp(max=1.0)


def _interior_point(
    Q: Tensor, q: Tensor, G: Tensor, h: Tensor, A: Tensor, b: Tensor, settings: QPSettings
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run the interior-point method; return ``(x, y, z, s)`` (all batched)."""
    B, n = q.shape
    m, p = h.shape[-1], b.shape[-1]
    tol, gap_tol = settings.tolerances(q.dtype)
    bounds = _BoundRows.find(G)
    dtype, device = q.dtype, q.device
    ones_m = torch.ones(B, m, dtype=dtype, device=device)
    if m == 0:
        kkt = _KKT(Q, G, ones_m, A, 0.0)
        x, y = kkt.solve(-q, b)
        y = y if y is not None else q.new_zeros(B, 0)
        return x, y, q.new_zeros(B, 0), q.new_zeros(B, 0)

    # Initial point: minimize 1/2 x'Qx + q'x + 1/2 |Gx - h|^2 s.t. Ax = b, then shift s, z > 0.
    kkt = _KKT(Q, G, ones_m, A, settings.reg, bounds)
    x, _ = kkt.solve(-q + _bmtv(G, h), b)
    r = h - _bmv(G, x)
    s = r + (1.0 - r.amin(dim=-1, keepdim=True)).clamp_min(0.0)
    z = -r + (1.0 + r.amax(dim=-1, keepdim=True)).clamp_min(0.0)
    y = q.new_zeros(B, p)

    scale_p = 1.0 + torch.cat([h.abs(), b.abs()], dim=-1).amax(dim=-1)
    scale_d = 1.0 + q.abs().amax(dim=-1)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    Gt = G.transpose(-1, -2)
    for _ in range(settings.max_iter):
        rd = _bmv(Q, x) + q + _bmv(Gt, z)
        if p:
            rd = rd + _bmtv(A, y)
        rpe = _bmv(A, x) - b if p else None
        rpi = _bmv(G, x) + s - h
        mu = (s * z).mean(dim=-1)
        pres = rpi.abs().amax(dim=-1)
        if p:
            pres = torch.maximum(pres, rpe.abs().amax(dim=-1))
        done = (pres <= tol * scale_p) & (rd.abs().amax(dim=-1) <= tol * scale_d) & (mu <= gap_tol)
        if bool(done.all()):
            break
        d = z / s
        kkt = _KKT(Q, G, d, A, settings.reg, bounds)
        r2 = -rpe if p else None

        def direction(rc: Tensor) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
            w = (z * rpi - rc) / s
            dx, dy = kkt.solve(-rd - _bmv(Gt, w), r2)
            Gdx = _bmv(G, dx)
            return dx, dy, -rpi - Gdx, d * Gdx + w

        # Predictor (affine scaling) step.
        sz = s * z
        _, _, ds_a, dz_a = direction(sz)
        a_aff = torch.minimum(_max_step(s, ds_a), _max_step(z, dz_a))
        mu_aff = ((s + a_aff[:, None] * ds_a) * (z + a_aff[:, None] * dz_a)).mean(dim=-1)
        sigma = (mu_aff / mu).clamp(0.0, 1.0) ** 3
        # Corrector step.
        dx, dy, ds, dz = direction(sz + ds_a * dz_a - (sigma * mu)[:, None])
        step = 0.99 * torch.minimum(_max_step(s, ds), _max_step(z, dz))
        # Converged (or unfactorizable) elements keep their iterate; torch.where also keeps
        # NaN directions of finished elements from leaking into them.
        keep = (done | ~kkt.ok)[:, None]
        step = step[:, None]
        x = torch.where(keep, x, x + step * dx)
        s = torch.where(keep, s, s + step * ds)
        z = torch.where(keep, z, z + step * dz)
        if p:
            y = torch.where(keep, y, y + step * dy)
    bad = (~done) | ~torch.isfinite(x).all(dim=-1)
    if bool(bad.any()):
        idx = bad.nonzero().flatten().tolist()
        shown = ", ".join(map(str, idx[:10])) + (" ..." if len(idx) > 10 else "")
        raise SolverError(
            f"solve_qp: the interior-point method did not converge in {settings.max_iter} iterations "
            f"(tol={tol:g}, gap_tol={gap_tol:g}, {q.dtype}) for batch element(s) {shown} of {B}; the problem may be "
            "infeasible, unbounded or badly scaled there. Check those elements' inputs (a "
            "positive semidefinite Q, feasible constraints), rescale, use float64, or raise max_iter."
        )
    return x, y, z, s


def _grad_shared(g: Tensor, like: Tensor) -> Tensor:
    """Sum a batched gradient over the batch when the input was shared (2-D)."""
    return g.sum(dim=0) if like.ndim == 2 else g


def _adjoint(
    Q: Tensor, G: Tensor, A: Tensor, z: Tensor, s: Tensor, grad_x: Tensor, reg: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Solve the transposed KKT system at the solution for the adjoint ``(dx, u, dy)``.

    ``[[Q, G', A'], [diag(z) G, -diag(s), 0], [A, 0, 0]] [dx; u; dy] = [-grad_x; 0; 0]``
    (OptNet's system with ``u = diag(z) dlambda``). It is kept unreduced and solved by batched
    LU: eliminating ``u`` would form ``Q + G' diag(z/s) G`` whose ratios ``z/s ~ 1e+-12`` at a
    tight solution cost several digits of the gradient.
    """
    B, n = grad_x.shape
    m, p = z.shape[-1], A.shape[-2]
    k = n + m + p
    K = grad_x.new_zeros(B, k, k)
    scale = Q.diagonal(dim1=-2, dim2=-1).abs().amax(dim=-1).clamp_min(1.0)
    K[:, :n, :n] = Q
    K[:, :n, :n].diagonal(dim1=-2, dim2=-1).add_((reg * scale)[..., None])
    if m:
        K[:, :n, n:n + m] = G.transpose(-1, -2)
        K[:, n:n + m, :n] = z.unsqueeze(-1) * G
        K[:, n:n + m, n:n + m] = torch.diag_embed(-s)
    if p:
        K[:, :n, n + m:] = A.transpose(-1, -2)
        K[:, n + m:, :n] = A
    rhs = torch.cat([-grad_x, grad_x.new_zeros(B, m + p)], dim=-1)
    if K.is_cuda or torch.get_num_threads() == 1:
        sol = torch.linalg.solve(K, rhs)
    else:
        # torch 2.13's multi-threaded batched CPU LU returns invalid pivots for matrices larger
        # than ~128 (MKL "DLASWP parameter 6" errors); factor single-threaded.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            sol = torch.linalg.solve(K, rhs)
        finally:
            torch.set_num_threads(threads)
    return sol[:, :n], sol[:, n:n + m], sol[:, n + m:]


class _QPFunction(torch.autograd.Function):
    """Autograd wrapper: interior-point forward, KKT implicit differentiation backward."""

    @staticmethod
    def forward(ctx, Q, q, G, h, A, b, settings):  # type: ignore[override]
        x, y, z, s = _interior_point(Q, q, G, h, A, b, settings)
        ctx.settings = settings
        ctx.save_for_backward(Q, G, A, x, y, z, s)
        return x

    @staticmethod
    def backward(ctx, grad_x):  # type: ignore[override]
        Q, G, A, x, y, z, s = ctx.saved_tensors
        dx, u, dy = _adjoint(Q, G, A, z, s, grad_x, ctx.settings.reg)
        m, p = z.shape[-1], y.shape[-1]
        gQ = gq = gG = gh = gA = gb = None
        if ctx.needs_input_grad[0]:
            gQ = _grad_shared(0.5 * (dx.unsqueeze(-1) * x.unsqueeze(-2) + x.unsqueeze(-1) * dx.unsqueeze(-2)), Q)
        if ctx.needs_input_grad[1]:
            gq = dx
        if m:
            if ctx.needs_input_grad[2]:
                gG = _grad_shared(u.unsqueeze(-1) * x.unsqueeze(-2) + z.unsqueeze(-1) * dx.unsqueeze(-2), G)
            if ctx.needs_input_grad[3]:
                gh = -u
        if p:
            if ctx.needs_input_grad[4]:
                gA = _grad_shared(dy.unsqueeze(-1) * x.unsqueeze(-2) + y.unsqueeze(-1) * dx.unsqueeze(-2), A)
            if ctx.needs_input_grad[5]:
                gb = -dy
        return gQ, gq, gG, gh, gA, gb, None


def _batched(t: Tensor | None, name: str, B: int, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """Check shape; broadcast a shared vector to ``(B, ...)`` (matrices may stay 2-D)."""
    if t is None:
        return like.new_zeros((B, *shape)) if len(shape) == 1 else like.new_zeros(shape)
    t = torch.as_tensor(t, device=like.device).to(like.dtype)
    if tuple(t.shape[-len(shape):]) != shape or t.ndim not in (len(shape), len(shape) + 1) or (
        t.ndim == len(shape) + 1 and t.shape[0] != B
    ):
        raise ConfigError(
            f"solve_qp: {name} has shape {tuple(t.shape)}; expected {shape} (shared) or {(B, *shape)} "
            "(one per batch element)."
        )
    if len(shape) == 1 and t.ndim == 1:
        t = t.expand(B, -1)
    return t


def solve_qp(
    Q: Tensor,
    q: Tensor,
    G: Tensor | None = None,
    h: Tensor | None = None,
    A: Tensor | None = None,
    b: Tensor | None = None,
    settings: QPSettings | None = None,
) -> Tensor:
    """Solve a batch of convex QPs ``min 1/2 x'Qx + q'x s.t. Ax = b, Gx <= h``.

    Differentiable with respect to every tensor argument (implicit differentiation of the KKT
    conditions at the solution). Works on any device; the result has the dtype of ``q`` (float32
    inputs are solved in float64 unless ``settings.compute_dtype`` says otherwise).

    Parameters
    ----------
    Q
        Positive semidefinite matrices ``(B, n, n)`` (or ``(n, n)`` shared by the batch).
    q
        Linear terms ``(B, n)``.
    G, h
        Inequalities ``G (m, n)`` or ``(B, m, n)``, ``h (m,)`` or ``(B, m)``; omit for none.
    A, b
        Equalities ``A (p, n)`` or ``(B, p, n)`` (full row rank), ``b (p,)`` or ``(B, p)``.
    settings
        :class:`QPSettings` (tolerance, iteration cap).

    Returns
    -------
    Tensor
        The solutions ``x``, shape ``(B, n)``.

    Raises
    ------
    ConfigError
        Inconsistent shapes.
    SolverError
        Some batch elements did not converge (they are named).
    """
    settings = settings or QPSettings()
    if q.ndim != 2:
        raise ConfigError(f"solve_qp: q must have shape (B, n); got {tuple(q.shape)}.")
    B, n = q.shape
    out_dtype = q.dtype
    if settings.compute_dtype is not None:
        q = q.to(settings.compute_dtype)
    Q = _batched(Q, "Q", B, (n, n), q)
    m = 0 if G is None else G.shape[-2]
    p = 0 if A is None else A.shape[-2]
    G = _batched(G, "G", B, (m, n), q)
    h = _batched(h, "h", B, (m,), q)
    if G.ndim == 2 and m:
        # Bound rows (one nonzero) last: their part of G' diag(d) G is a diagonal (_BoundRows).
        perm = torch.argsort(((G != 0).sum(dim=-1) == 1).int(), stable=True)
        G, h = G[perm], h[:, perm]
    A = _batched(A, "A", B, (p, n), q)
    b = _batched(b, "b", B, (p,), q)
    return _QPFunction.apply(Q, q, G, h, A, b, settings).to(out_dtype)


__all__ = ["QPSettings", "solve_qp"]
