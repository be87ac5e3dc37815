"""Cardinality and minimum-position constraints by mixed-integer programming (per window).

With binary ``z_i`` (asset ``i`` held), for each window::

    min  risk(w)   s.t.  1'w = 1,  x z_i <= w_i <= u z_i,  sum_i z_i <= k,  z in {0, 1}^N

(at most ``k = max_assets`` names, each held at least ``x = min_weight`` and at most
``u = max_weight``). ``risk`` is the variance ``w'Sw`` (a mixed-integer QP, solved by SCIP
through cvxpy; HiGHS solves mixed-integer *linear* programs only) or the CVaR at ``beta``
(Rockafellar-Uryasev, a mixed-integer LP, solved by HiGHS through cvxpy). Both solvers come
from the package index (``pyscipopt``, ``highspy``). Mixed-integer problems are not batched nor
differentiable: the windows are solved one after the other on the CPU, and the weights on the
support the solver chose are polished by Clarabel at tolerance 1e-10 (the mixed-integer solvers
stop at a relative gap; SCIP's is set to 1e-9) (for a differentiable
relaxation see :class:`gradfolio.allocation.allocators.TopKAllocator`). The problem is
infeasible when ``k u < 1`` or ``x > u``: :class:`~gradfolio.errors.InfeasibleError` names the
windows (all of them) before any solve, and any window the solver reports infeasible.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.covariance import (
    CovarianceEstimator,
    resolve_covariance,
)
from gradfolio.errors import ConfigError, InfeasibleError, SolverError

Objective = Literal["variance", "cvar"]


class CardinalityPortfolio(ClassicalPortfolio):
    """Minimum variance or minimum CVaR with at most ``max_assets`` names of at least ``min_weight``.

    Parameters
    ----------
    max_assets
        ``k``: most assets held.
    min_weight
        ``x``: smallest weight of an asset held (``0`` for none).
    max_weight
        ``u``: largest weight of an asset.
    objective
        ``"variance"`` (SCIP, MIQP) or ``"cvar"`` (HiGHS, MILP).
    beta
        CVaR level for ``objective="cvar"``.
    covariance
        Covariance estimator for ``objective="variance"`` (a name of :data:`COVARIANCES` or a callable).
    time_limit
        Seconds the solver may spend on one window.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "cardinality"

    def __init__(
        self,
        max_assets: int = 5,
        min_weight: float = 0.0,
        max_weight: float = 1.0,
        objective: Objective = "variance",
        beta: float = 0.95,
        covariance: str | CovarianceEstimator = "sample",
        time_limit: float = 60.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        who = type(self).__name__
        if not isinstance(max_assets, int) or max_assets < 1:
            raise ConfigError(f"max_assets={max_assets!r} for {who}: use a positive integer.")
        if not 0.0 <= min_weight <= 1.0 or not 0.0 < max_weight <= 1.0:
            raise ConfigError(f"min_weight={min_weight!r}, max_weight={max_weight!r} for {who}: use 0 <= min_weight <= 1 and 0 < max_weight <= 1.")
        if objective not in ("variance", "cvar"):
            raise ConfigError(f"objective={objective!r} for {who}: use 'variance' or 'cvar'.")
        if not 0.0 < beta < 1.0:
            raise ConfigError(f"beta={beta!r} for {who}: use a level in (0, 1).")
        self.max_assets, self.min_weight, self.max_weight = max_assets, float(min_weight), float(max_weight)
        self.objective, self.beta, self.time_limit = objective, float(beta), float(time_limit)
        self.covariance = resolve_covariance(covariance)

    def allocate(self, R: Tensor) -> Tensor:
        B, T, N = R.shape
        who = type(self).__name__
        k = min(self.max_assets, N)
        if k * self.max_weight < 1.0 - 1e-12 or self.min_weight > self.max_weight:
            raise InfeasibleError(
                f"{who}: max_assets={k} names of at most max_weight={self.max_weight} cannot sum to one "
                f"(or min_weight={self.min_weight} > max_weight) in every window 0..{B - 1}; "
                "allow more names or a larger max_weight.",
                rows=list(range(B)),
            )
        import cvxpy as cp  # imported on use: importing gradfolio does not load cvxpy

        Rn = R.detach().cpu().double().numpy()
        S = self.covariance(R).detach().cpu().double().numpy() if self.objective == "variance" else None
        out, dead = [], []
        for b in range(B):
            w, z = cp.Variable(N), cp.Variable(N, boolean=True)
            cons = [cp.sum(w) == 1, w >= self.min_weight * z, w <= self.max_weight * z, cp.sum(z) <= k]
            if self.objective == "variance":
                Sb = S[b] / np.diag(S[b]).mean()
                prob = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(Sb))), cons)
                solver, opts = "SCIP", {"scip_params": {"limits/time": self.time_limit, "limits/gap": 1e-9}}
            else:
                a, u = cp.Variable(), cp.Variable(T)
                scale = 1.0 / np.abs(Rn[b]).mean()
                cons += [u >= 0, u >= -(Rn[b] * scale) @ w - a]
                prob = cp.Problem(cp.Minimize(a + cp.sum(u) / (T * (1.0 - self.beta))), cons)
                solver, opts = "HIGHS", {"time_limit": self.time_limit, "output_flag": False}
            try:
                prob.solve(solver=solver, **opts)
            except cp.SolverError as exc:
                raise SolverError(f"{who}: {solver} failed on batch element {b} ({exc}); raise time_limit.") from exc
            if prob.status in ("infeasible", "infeasible_inaccurate"):
                dead.append(b)
                out.append(np.full(N, np.nan))
                continue
            if w.value is None:
                raise SolverError(f"{who}: {solver} returned no solution for batch element {b} (status {prob.status}); raise time_limit.")
            support = np.flatnonzero(np.asarray(z.value) > 0.5)
            out.append(self._polish(support, N, Rn[b], S[b] if self.objective == "variance" else None))
        if dead:
            raise InfeasibleError(f"{who}: {self.objective} problem infeasible in batch elements {dead}.", rows=dead)
        return torch.as_tensor(np.stack(out), dtype=R.dtype, device=R.device)

    def _polish(self, support: np.ndarray, N: int, R: np.ndarray, S: np.ndarray | None) -> np.ndarray:
        """The continuous problem on the support the mixed-integer solver chose, by Clarabel at 1e-10."""
        import cvxpy as cp

        T, m = R.shape[0], support.size
        w = cp.Variable(m)
        cons = [cp.sum(w) == 1, w >= self.min_weight, w <= self.max_weight]
        if S is not None:
            Ss = S[np.ix_(support, support)] / np.diag(S).mean()
            obj = cp.quad_form(w, cp.psd_wrap(Ss))
        else:
            a, v = cp.Variable(), cp.Variable(T)
            cons += [v >= 0, v >= -(R[:, support] / np.abs(R).mean()) @ w - a]
            obj = a + cp.sum(v) / (T * (1.0 - self.beta))
        cp.Problem(cp.Minimize(obj), cons).solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
        out = np.zeros(N)
        out[support] = np.clip(w.value, 0.0, None)
        return out / out.sum()


__all__ = ["CardinalityPortfolio"]
