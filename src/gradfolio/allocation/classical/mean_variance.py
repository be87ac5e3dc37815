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
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio, positive_excess
from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.allocation.classical.mean import MeanEstimator, resolve_mean
from gradfolio.allocation.classical.simple import volatilities
from gradfolio.solvers import QPSettings, solve_qp


def _scaled_covariance(cov: Tensor, who: str) -> Tensor:
    var = volatilities(cov, who) ** 2
    return cov / var.mean(dim=-1)[:, None, None]


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
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "min_variance"

    def __init__(self, covariance: str | CovarianceEstimator = "sample", **kwargs) -> None:
        super().__init__(**kwargs)
        self.covariance = resolve_covariance(covariance)

    def allocate(self, R: Tensor) -> Tensor:
        Q = _scaled_covariance(self.covariance(R), type(self).__name__)
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
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.covariance = resolve_covariance(covariance)
        self.risk_free = float(risk_free)
        self.mean = resolve_mean(mean, mean_params)

    def allocate(self, R: Tensor) -> Tensor:
        who = type(self).__name__
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
