"""Constrained portfolio QPs for :mod:`bench_solvers` and the peers that solve them.

Two constraint sets at any ``n`` (``SPECS``):

- ``mw+2groups``: long-only, fully invested, ``w_i <= max(0.1, 2/n)``, group 1 (the first
  ``n/5`` assets) at most 0.2, group 2 (the next ``n/5``) within [0.15, 0.35];
- ``mw+2groups+lev+turn``: the same bounds and groups but long-short (``|w_i| <= max(0.1, 2/n)``),
  gross leverage ``sum |w| <= 1.5`` and turnover ``sum |w - w_prev| <= 0.5`` from equal weights.

Every solver gets the same standard form (``ConvexProblem``'s compiled matrices,
``x = [w, t, u]`` with the auxiliary variables of leverage and turnover):
``min 1/2 x'Qx + q'x s.t. Gx <= h, Ax = b`` (:func:`standard_form`). Peers: qpth (forward +
backward, its batched interior point), proxsuite (ProxQP dense, forward only: bound rows as its
box constraints, ``solve_in_parallel`` for a batch), and cvxpy + Clarabel at tight tolerance as the
reference of the weights.
"""

from __future__ import annotations

import numpy as np
import torch

from gradfolio.solvers import ConvexProblem, Group, PortfolioConstraints

GAMMA, ALPHA = 5.0, 0.01
SPECS = ("mw+2groups", "mw+2groups+lev+turn")
QPTH_AUX_REG = 1e-8


def spec(name: str, n: int) -> PortfolioConstraints:
    """The constraint set ``name`` (see the module docstring) for ``n`` assets."""
    k, mw = max(2, n // 5), max(0.1, 2.0 / n)
    groups = [Group(list(range(k)), upper=0.2, name="g1"), Group(list(range(k, 2 * k)), lower=0.15, upper=0.35, name="g2")]
    if name == "mw+2groups":
        return PortfolioConstraints(long_only=True, max_weight=mw, groups=groups)
    if name == "mw+2groups+lev+turn":
        return PortfolioConstraints(max_weight=mw, groups=groups, leverage=1.5, turnover=0.5)
    raise ValueError(f"unknown constraint set {name!r}; use one of {SPECS}")


def standard_form(prob: ConvexProblem, mu: torch.Tensor, cov: torch.Tensor) -> dict[str, torch.Tensor]:
    """``Q (B, nv, nv), q (B, nv), G (m, nv), h (B, m), A (p, nv), b (p,)`` of ``prob`` at ``mu (B, n), cov (B, n, n)``
    (``w_prev`` = equal weights)."""
    B, n = mu.shape
    nv = prob.compiled.n_vars
    Q = mu.new_zeros(B, nv, nv)
    Q[:, :n, :n] = GAMMA * cov + ALPHA * torch.eye(n, dtype=mu.dtype, device=mu.device)
    q = torch.nn.functional.pad(-mu, (0, nv - n))
    t = prob.compiled.tensors(mu.dtype, mu.device)
    h = t["h0"] + (w_prev(B, n, mu) @ t["H_prev"].T if prob.compiled.uses_prev else 0.0)
    return {"Q": Q, "q": q, "G": t["G"], "h": h.expand(B, -1), "A": t["A"], "b": t["b"]}


def w_prev(B: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """The previous weights of the turnover constraint: equal weights ``(B, n)``."""
    return like.new_full((B, n), 1.0 / n)


def clarabel(form: dict[str, torch.Tensor], n: int, count: int) -> np.ndarray:
    """Weights ``(count, n)`` of the first ``count`` problems by cvxpy + Clarabel at tight tolerance."""
    import cvxpy as cp

    f = {k: v.double().cpu().numpy() for k, v in form.items()}
    out = []
    for i in range(count):
        x = cp.Variable(f["q"].shape[1])
        cons = [f["G"] @ x <= f["h"][i], f["A"] @ x == f["b"]]
        obj = 0.5 * cp.quad_form(x, cp.psd_wrap(f["Q"][i])) + f["q"][i] @ x
        cp.Problem(cp.Minimize(obj), cons).solve(
            solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, tol_ktratio=1e-10
        )
        out.append(x.value[:n])
    return np.stack(out)


def qpth_layer(form: dict[str, torch.Tensor], n: int):
    """qpth's ``QPFunction`` on the standard form: ``Q, q -> x (B, nv)`` (differentiable).

    qpth needs a positive definite ``Q``; the auxiliary variables of leverage and turnover (columns
    ``n:``) have no cost, so they get ``QPTH_AUX_REG`` on the diagonal (moves the weights by less
    than the reported error).
    """
    from qpth.qp import QPFunction

    def solve(Q: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        if Q.shape[-1] > n:
            Q = Q + torch.diag(torch.cat([Q.new_zeros(n), Q.new_full((Q.shape[-1] - n,), QPTH_AUX_REG)]))
        return QPFunction(verbose=-1, maxIter=50)(Q, q, form["G"], form["h"], form["A"], form["b"])

    return solve


class Proxsuite:
    """ProxQP (dense back end) on the standard form, forward only.

    Bound rows of ``G`` (one nonzero) become ProxQP's box constraints ``l_box <= x <= u_box``, the
    others its general rows ``C x <= u``. One problem: ``proxqp.dense.solve``; a batch: one
    ``dense.QP`` per problem and ``solve_in_parallel`` on ``threads`` threads. ``eps_abs = 1e-9``
    (its default 1e-5 would not be comparable with the exact solvers).
    """

    def __init__(self, form: dict[str, torch.Tensor], threads: int, eps_abs: float = 1e-9) -> None:
        G, h = form["G"].double().cpu().numpy(), form["h"].double().cpu().numpy()
        single = (G != 0).sum(axis=1) == 1
        nv = G.shape[1]
        self.C = np.ascontiguousarray(G[~single])
        self.general = ~single
        cols = np.abs(G[single]).argmax(axis=1)
        coef = G[single][np.arange(cols.size), cols]
        self.cols, self.coef, self.h = cols, coef, h
        self.A, self.b = form["A"].double().cpu().numpy(), form["b"].double().cpu().numpy()
        self.nv, self.threads, self.eps = nv, threads, eps_abs

    def _box(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.full(self.nv, -1e20), np.full(self.nv, 1e20)
        val = self.h[i][~self.general] / self.coef
        up = self.coef > 0
        np.minimum.at(hi, self.cols[up], val[up])
        np.maximum.at(lo, self.cols[~up], val[~up])
        return lo, hi

    def __call__(self, Q: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        from proxsuite import proxqp

        Qn, qn = Q.detach().double().cpu().numpy(), q.detach().double().cpu().numpy()
        B, m = Qn.shape[0], int(self.general.sum())
        lo_c = np.full(m, -1e20)
        if B == 1:
            lo, hi = self._box(0)
            res = proxqp.dense.solve(Qn[0], qn[0], self.A, self.b, self.C, lo_c, self.h[0][self.general],
                                     l_box=lo, u_box=hi, eps_abs=self.eps, eps_rel=0.0)
            xs = [res.x]
        else:
            qps = proxqp.dense.VectorQP()
            for i in range(B):
                qp = proxqp.dense.QP(self.nv, self.A.shape[0], m, True)
                qp.settings.eps_abs, qp.settings.eps_rel = self.eps, 0.0
                lo, hi = self._box(i)
                qp.init(Qn[i], qn[i], self.A, self.b, self.C, lo_c, self.h[i][self.general], lo, hi)
                qps.append(qp)
            proxqp.dense.solve_in_parallel(qps=qps, num_threads=self.threads)
            xs = [qps[i].results.x for i in range(B)]
        return torch.as_tensor(np.stack(xs), dtype=q.dtype, device=q.device)
