"""Risk parity (equal risk contribution, or any risk budget) by a batched Newton method.

The portfolio whose risk contributions ``w_i (Sigma w)_i`` are proportional to budgets ``b``
(summing to one) is ``w = y / sum(y)`` with ``y`` the unique minimizer of Spinu's strictly
convex problem (Spinu, 2013, "An algorithm for computing risk parity weights")::

    minimize  f(y) = 1/2 y' Sigma y - sum_i c_i log(y_i),   y > 0,

where ``c = b / min(b)``; the rescaling makes every ``c_i >= 1`` so that ``f`` is
self-concordant, which guarantees that the damped Newton step ``y <- y + d / (1 + lambda)``
(``lambda`` the Newton decrement) stays positive and converges, quadratically once
``lambda < 1/4``. All windows are solved together; each step is one batched linear solve.

With ``constraints`` (per-asset bounds, groups, leverage: a
:class:`~gradfolio.solvers.PortfolioConstraints` with budget 1), skfolio's ``RiskBudgeting``
formulation: the same problem over the cone of the homogenized constraints (``y = k w``,
``A y = b k``, ``G y <= h k``, ``k >= 0``)::

    minimize  1/2 y' Sigma y - sum_i b_i log(y_i)   s.t.  [y, k] in that cone,   w = y / k,

solved by Clarabel with one exponential cone per asset (``(s_i, 1, y_i)``: ``log y_i >= s_i``),
window by window (:func:`constrained_risk_budget_weights`). Without bounds the weights equal the
Newton method's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.constrained import (
    check_spec, constrain, constrained_weights, raise_infeasible, solve_all,
)
from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.allocation.classical.simple import volatilities
from gradfolio.errors import ConfigError, SolverError
from gradfolio.solvers.conic import ConicBatch, Pattern
from gradfolio.solvers.constraints import PortfolioConstraints

#: Clarabel's tolerances for the constrained risk budgeting problems: the weights err by about the
#: square root of the objective gap (1e-10 left 5e-7 against the Newton method, 1e-12 2e-9).
CONSTRAINED_TOL = 1e-12


def risk_budget_weights(
    cov: Tensor, budgets: Tensor | None = None, max_iter: int = 100, tol: float | None = None
) -> Tensor:
    """Risk-budgeting weights for a batch of covariance matrices.

    Parameters
    ----------
    cov
        Positive definite covariances, shape ``(B, N, N)``.
    budgets
        Positive risk budgets, shape ``(N,)`` or ``(B, N)``; ``None`` for equal budgets.
        They are normalized to sum one.
    max_iter
        Most Newton steps.
    tol
        Stop when every squared Newton decrement is below ``tol`` (an upper bound, up to a
        factor two, on the objective gap); default: the machine epsilon of the dtype.

    Returns
    -------
    Tensor of shape ``(B, N)``: long-only weights summing to one.

    Raises
    ------
    SolverError
        Some window did not converge within ``max_iter`` steps (its batch index is named).
    """
    B, N, _ = cov.shape
    if budgets is None:
        budgets = torch.ones(N, dtype=cov.dtype, device=cov.device)
    c = (budgets / budgets.min(dim=-1, keepdim=True).values).expand(B, N)
    tol = torch.finfo(cov.dtype).eps if tol is None else tol
    y = (c / cov.diagonal(dim1=-2, dim2=-1)).sqrt()
    for _ in range(max_iter):
        grad = (cov @ y[..., None])[..., 0] - c / y
        hess = cov + torch.diag_embed(c / y**2)
        step = -torch.linalg.solve(hess, grad)
        decrement2 = -(grad * step).sum(dim=-1)
        active = decrement2 > tol
        if not bool(active.any()):
            break
        damped = y + step / (1.0 + decrement2.clamp_min(0.0).sqrt())[:, None]
        y = torch.where(active[:, None], damped, y)  # converged windows stay where they are
    else:
        b = int((decrement2 > tol).nonzero()[0])
        raise SolverError(
            f"risk parity: Newton did not converge in {max_iter} steps for batch element {b} "
            f"(Newton decrement^2 {float(decrement2[b]):.3g} > {tol:.3g}); raise max_iter or "
            "check that the covariance is positive definite."
        )
    return y / y.sum(dim=-1, keepdim=True)


def constrained_risk_budget_weights(
    cov: Tensor, constraints: PortfolioConstraints, budgets: Tensor | None = None, who: str = "RiskParity"
) -> Tensor:
    """Risk-budgeting weights under ``constraints`` (see the module docstring), one Clarabel call per window.

    Parameters
    ----------
    cov
        Positive definite covariances, shape ``(B, N, N)``.
    constraints
        The spec by index, budget 1 (compiled here: :class:`~gradfolio.errors.InfeasibleError`
        if no portfolio satisfies it).
    budgets
        Positive risk budgets ``(N,)``; ``None`` for equal budgets.
    who
        Name for messages.

    Returns
    -------
    Tensor of shape ``(B, N)``, float64 on the CPU: positive weights.

    Raises
    ------
    InfeasibleError
        Windows whose problem has no solution (their batch indices are its ``rows``).
    """
    B, N, _ = cov.shape
    compiled = constraints.compile(N)
    S = cov.detach().cpu().double().numpy()
    S = S / np.trace(S, axis1=1, axis2=2)[:, None, None] * N  # unit mean variance (same weights)
    b = np.ones(N) if budgets is None else budgets.detach().cpu().double().numpy()
    b = b / b.sum()
    iu = np.triu_indices(N)
    empty = np.zeros(0, np.int64)
    base = ConicBatch(  # x = [y (N), s (N)]: min 1/2 y'Sy - b's
        q=np.concatenate([np.zeros((B, N)), np.broadcast_to(-b, (B, N))], axis=1),
        A=Pattern(empty, empty, (0, 2 * N)), A_values=np.zeros((B, 0)), b=np.zeros((B, 0)), m_eq=0,
        P=Pattern(iu[0], iu[1], (2 * N, 2 * N)), P_values=S[:, iu[0], iu[1]],
    )
    c = constrain(base, compiled, np.zeros(0, dtype=bool), ratio=True)  # x = [y, s, t..., k]
    m, n = c.A.shape
    i = np.arange(N)
    rows = np.concatenate([c.A.rows, m + 3 * i, m + 3 * i + 2])  # (s_i, 1, y_i) in the exponential cone
    cols = np.concatenate([c.A.cols, N + i, i])
    values = np.concatenate([c.A_values, np.full((B, 2 * N), -1.0)], axis=1)
    rhs = np.concatenate([c.b, np.tile(np.array([0.0, 1.0, 0.0]), (B, N))], axis=1)
    batch = ConicBatch(q=c.q, A=Pattern(rows, cols, (m + 3 * N, n)), A_values=values, b=rhs, m_eq=c.m_eq,
                       P=c.P, P_values=c.P_values, n_exp=N)
    x, bad = solve_all(batch, who, 0, CONSTRAINED_TOL)
    raise_infeasible(bad, who, constraints)
    return torch.as_tensor(constrained_weights(x, N, ratio=True))


class RiskParity(ClassicalPortfolio):
    """Equal risk contribution (or risk budgeting) portfolio, long-only and fully invested.

    Matches skfolio's ``RiskBudgeting`` with the variance risk measure.

    Parameters
    ----------
    budgets
        Positive risk budgets, one per asset (normalized to sum one); ``None`` (default) gives
        equal risk contributions.
    covariance
        ``"sample"`` (default), ``"ledoit_wolf"``, ``"exponential"`` or a callable.
    max_iter
        Most Newton steps.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` (bounds, groups, leverage; budget 1),
        as skfolio's ``RiskBudgeting(min_weights=..., max_weights=..., groups=...,
        linear_constraints=...)``; default ``None`` (long-only, fully invested, Newton's method).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "risk_parity"

    def __init__(
        self,
        budgets: Sequence[float] | Tensor | None = None,
        covariance: str | CovarianceEstimator = "sample",
        max_iter: int = 100,
        constraints: PortfolioConstraints | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.constraints = check_spec(constraints, type(self).__name__, ratio=True)
        if budgets is not None:
            budgets = torch.as_tensor(budgets, dtype=torch.float64)
            if budgets.ndim != 1 or not bool((budgets > 0).all()) or not bool(budgets.isfinite().all()):
                raise ConfigError(
                    f"budgets={budgets.tolist()} for RiskParity: use one positive finite budget "
                    "per asset."
                )
        self.budgets = budgets
        self.covariance = resolve_covariance(covariance)
        self.max_iter = max_iter

    def allocate(self, R: Tensor) -> Tensor:
        N = R.shape[-1]
        budgets = None
        if self.budgets is not None:
            if self.budgets.shape[0] != N:
                raise ConfigError(
                    f"budgets for RiskParity: {self.budgets.shape[0]} budgets for {N} assets; "
                    "give one budget per asset."
                )
            budgets = self.budgets.to(dtype=R.dtype, device=R.device)
        cov = self.covariance(R)
        volatilities(cov, type(self).__name__)
        if self.constraints is not None:
            w = constrained_risk_budget_weights(cov, self.constraints, budgets, type(self).__name__)
            return w.to(dtype=R.dtype, device=R.device)
        return risk_budget_weights(cov, budgets, max_iter=self.max_iter)
