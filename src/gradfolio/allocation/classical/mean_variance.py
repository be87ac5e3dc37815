"""Minimum-variance and maximum-Sharpe portfolios: one batched QP over all windows.

Minimum variance::

    min  w' S w   s.t.  1'w = 1,  w >= 0

Maximum Sharpe ratio ``(mu'w - r_f) / sqrt(w' S w)``, by the Charnes–Cooper homogenization
``y = k w`` (``k > 0``), which turns the ratio into the convex QP::

    min  y' S y   s.t.  e'y = 1,  y >= 0,      w = y / 1'y,

with ``e = (mu - r_f) / max_i(mu_i - r_f)`` (the scaling keeps ``y`` of order one). It exists
only when some ``mu_i > r_f``; otherwise :class:`~gradfolio.errors.InfeasibleError` names
every such window (its ``rows`` attribute lists them).

``S`` is the covariance estimate divided by its mean variance (the weights do not depend on the
scale of ``S``, and the solver sees a well-scaled problem). All ``B`` windows are one batched
problem for :func:`gradfolio.solvers.solve_qp` (a primal-dual active-set method that ends at the
exact solution, with an interior-point fallback; on the device of ``X``), which is
differentiable, so the weights are too. The QP is solved in float64 with tolerance ``1e-11``
whatever the input dtype, and the weights are returned in ``X``'s dtype. Measured on the
bundled data (252-day windows): weights within 1e-6 of Clarabel's at ``1e-12`` tolerances
(median 1e-10); float32 input adds only the rounding of the returns (weights within 2e-6 of the
float64 input's); a solve in float32 (``QPSettings(compute_dtype=None)``) would be accurate to
only ~4e-4.

With ``constraints`` (a :class:`~gradfolio.solvers.PortfolioConstraints`: bounds, groups,
leverage...), the same objectives are solved under the spec's rows instead of ``1'w = 1,
w >= 0`` (maximum Sharpe homogenized with ``k``: ``A y = b k, G y <= h k``), by Clarabel with the
sparse standard form of :mod:`gradfolio.allocation.classical.constrained` (tolerance ``1e-10``,
no autograd); the weights are the solver's, unclipped, so a bound is met to ~1e-10.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio, positive_excess
from gradfolio.allocation.classical.constrained import (
    check_spec, constrain, constrained_weights, quadratic_batch, raise_infeasible, solve_all,
)
from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.allocation.classical.mean import MeanEstimator, resolve_mean
from gradfolio.allocation.classical.simple import volatilities
from gradfolio.solvers import PortfolioConstraints, QPSettings, solve_qp


def _scaled_covariance(cov: Tensor, who: str) -> Tensor:
    var = volatilities(cov, who) ** 2
    return cov / var.mean(dim=-1)[:, None, None]


#: Clarabel's tolerances for the constrained problems.
CONSTRAINED_TOL = 1e-12


def solve_constrained_qp(
    Q: Tensor, constraints: PortfolioConstraints, who: str, excess: Tensor | None = None
) -> Tensor:
    """``min 1/2 w'Qw`` under ``constraints`` for every window (or the homogenized ratio with ``excess``).

    Parameters
    ----------
    Q
        Positive (semi)definite matrices, shape ``(B, N, N)``.
    constraints
        The spec (by index; compiled here: :class:`~gradfolio.errors.InfeasibleError` if no
        portfolio satisfies it).
    who
        Name of the portfolio, for messages.
    excess
        ``(B, N)``: solve ``min y'Qy`` s.t. ``excess'y = 1`` and the homogenized rows; ``w = y / k``.

    Returns
    -------
    Tensor of shape ``(B, N)`` in float64 (on the CPU).

    Raises
    ------
    InfeasibleError
        Windows whose problem has no solution (their batch indices are its ``rows``).
    """
    N = Q.shape[-1]
    compiled = constraints.compile(N)
    ratio = excess is not None
    base = quadratic_batch(Q.detach().cpu().double().numpy(),
                           None if excess is None else excess.detach().cpu().double().numpy())
    batch = constrain(base, compiled, np.ones(base.A.shape[0], dtype=bool), ratio)
    x, rows = solve_all(batch, who, 0, CONSTRAINED_TOL)
    raise_infeasible(rows, who, constraints)
    return torch.as_tensor(constrained_weights(x, N, ratio))


#: Solver settings of the classical QPs (float64 by default): weights within ~1e-6 of Clarabel.
SETTINGS = QPSettings(tol=1e-11)


def solve_long_only_qp(Q: Tensor, a: Tensor, settings: QPSettings = SETTINGS) -> Tensor:
    """Solve ``min 1/2 x'Qx`` s.t. ``a'x = 1``, ``x >= 0`` for every window at once.

    Parameters
    ----------
    Q
        Positive (semi)definite matrices, shape ``(B, N, N)``.
    a
        Equality-constraint vectors, shape ``(B, N)``.
    settings
        Settings of :func:`gradfolio.solvers.solve_qp` (tolerance, iteration cap).

    Returns
    -------
    Tensor of shape ``(B, N)``, in float64, clipped at zero.
    """
    Q, a = Q.double(), a.double()
    B, N = a.shape
    eye = torch.eye(N, dtype=Q.dtype, device=Q.device)
    return solve_qp(
        Q,
        torch.zeros_like(a),
        G=-eye,
        h=torch.zeros(N, dtype=Q.dtype, device=Q.device),
        A=a[:, None, :],
        b=torch.ones(B, 1, dtype=Q.dtype, device=Q.device),
        settings=settings,
    ).clamp_min(0.0)


class MinimumVariance(ClassicalPortfolio):
    """Long-only, fully invested minimum-variance portfolio.

    Matches skfolio's ``MeanRisk()`` (minimum variance) and PyPortfolioOpt's
    ``EfficientFrontier(None, S).min_volatility()`` for the same covariance estimate.

    Parameters
    ----------
    covariance
        ``"sample"`` (default), ``"ledoit_wolf"``, ``"exponential"`` or a callable.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``1'w = 1, w >= 0`` (default
        ``None``); skfolio's ``MeanRisk`` with the same ``min_weights``/``max_weights``/groups.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_variance"

    def __init__(
        self,
        covariance: str | CovarianceEstimator = "sample",
        constraints: PortfolioConstraints | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.covariance = resolve_covariance(covariance)
        self.constraints = check_spec(constraints, type(self).__name__)

    def allocate(self, R: Tensor) -> Tensor:
        Q = _scaled_covariance(self.covariance(R), type(self).__name__)
        if self.constraints is not None:
            w = solve_constrained_qp(Q, self.constraints, type(self).__name__)
            return w.to(dtype=R.dtype, device=R.device)
        w = solve_long_only_qp(Q, torch.ones_like(R[:, 0]))
        return (w / w.sum(dim=-1, keepdim=True)).to(R.dtype)


class MaximumSharpe(ClassicalPortfolio):
    """Long-only, fully invested maximum-Sharpe-ratio ("optimum risk") portfolio.

    Matches skfolio's ``MeanRisk(objective_function=MAXIMIZE_RATIO)`` and PyPortfolioOpt's
    ``max_sharpe`` with arithmetic mean returns for the same covariance estimate.

    Parameters
    ----------
    covariance
        ``"sample"`` (default), ``"ledoit_wolf"``, ``"exponential"`` or a callable.
    risk_free
        Risk-free return per period (same units as the returns).
    mean, mean_params
        Expected-return estimator: ``"sample"`` (default, the window mean),
        ``"black_litterman"`` (with ``mean_params`` the keywords of
        :class:`~gradfolio.allocation.classical.BlackLitterman`) or any callable
        ``R (B, L, N) -> mu (B, N)`` (e.g. a ``BlackLitterman`` object); see
        :mod:`gradfolio.allocation.classical.mean`.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` replacing ``1'w = 1, w >= 0`` (default
        ``None``; the budget must be 1). With constraints, a window where no admissible portfolio
        has a mean above ``risk_free`` raises :class:`~gradfolio.errors.InfeasibleError` naming it.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "max_sharpe"

    def __init__(
        self,
        covariance: str | CovarianceEstimator = "sample",
        risk_free: float = 0.0,
        mean: str | MeanEstimator = "sample",
        mean_params: dict | None = None,
        constraints: PortfolioConstraints | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.covariance = resolve_covariance(covariance)
        self.risk_free = float(risk_free)
        self.mean = resolve_mean(mean, mean_params)
        self.constraints = check_spec(constraints, type(self).__name__, ratio=True)

    def allocate(self, R: Tensor) -> Tensor:
        who = type(self).__name__
        if self.constraints is not None:
            excess = self.mean(R) - self.risk_free
            scale = excess.abs().max(dim=-1).values.clamp_min(torch.finfo(excess.dtype).tiny)
            Q = _scaled_covariance(self.covariance(R), who)
            w = solve_constrained_qp(Q, self.constraints, who, excess / scale[:, None])
            return w.to(dtype=R.dtype, device=R.device)
        excess = positive_excess(R, self.risk_free, who, self.mean(R))
        best = excess.max(dim=-1).values
        Q = _scaled_covariance(self.covariance(R), who)
        y = solve_long_only_qp(Q, excess / best[:, None])
        return (y / y.sum(dim=-1, keepdim=True)).to(R.dtype)


class MaximumDiversification(ClassicalPortfolio):
    """Long-only, fully invested maximum-diversification portfolio (Choueifaty and Coignard).

    Maximizes the diversification ratio ``sigma'w / sqrt(w'Sw)`` (``sigma`` the volatilities):
    the maximum-Sharpe QP with ``sigma`` in place of the excess means,
    ``min y'Sy s.t. (sigma / max sigma)'y = 1, y >= 0``, ``w = y / 1'y``. Matches skfolio's
    ``MaximumDiversification()``.

    Parameters
    ----------
    covariance
        A name of :data:`COVARIANCES` or a callable ``(B, L, N) -> (B, N, N)``.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "max_diversification"

    def __init__(self, covariance: str | CovarianceEstimator = "sample", **kwargs) -> None:
        super().__init__(**kwargs)
        self.covariance = resolve_covariance(covariance)

    def allocate(self, R: Tensor) -> Tensor:
        cov = self.covariance(R)
        sd = volatilities(cov, type(self).__name__)
        Q = _scaled_covariance(cov, type(self).__name__)
        y = solve_long_only_qp(Q, sd / sd.max(dim=-1, keepdim=True).values)
        return (y / y.sum(dim=-1, keepdim=True)).to(R.dtype)
