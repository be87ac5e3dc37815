"""Risk parity (equal risk contribution, or any risk budget) by a batched Newton method.

The portfolio whose risk contributions ``w_i (Sigma w)_i`` are proportional to budgets ``b``
(summing to one) is ``w = y / sum(y)`` with ``y`` the unique minimizer of Spinu's strictly
convex problem (Spinu, 2013, "An algorithm for computing risk parity weights")::

    minimize  f(y) = 1/2 y' Sigma y - sum_i c_i log(y_i),   y > 0,

where ``c = b / min(b)``; the rescaling makes every ``c_i >= 1`` so that ``f`` is
self-concordant, which guarantees that the damped Newton step ``y <- y + d / (1 + lambda)``
(``lambda`` the Newton decrement) stays positive and converges, quadratically once
``lambda < 1/4``. All windows are solved together; each step is one batched linear solve.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.allocation.classical.simple import volatilities
from gradfolio.errors import ConfigError, SolverError


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
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "risk_parity"

    def __init__(
        self,
        budgets: Sequence[float] | Tensor | None = None,
        covariance: str | CovarianceEstimator = "sample",
        max_iter: int = 100,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
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
        return risk_budget_weights(cov, budgets, max_iter=self.max_iter)
