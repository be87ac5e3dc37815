"""Differentiable convex allocation layer for end-to-end networks.

:class:`ConvexAllocator` maps expected returns ``mu (B, N)`` and a risk model (covariance
``(B, N, N)`` or factor ``(B, K, N)``) to the constrained mean-variance weights::

    w = argmin_w 1/2 gamma w'S w - mu'w + 1/2 alpha |w|^2  s.t.  PortfolioConstraints

and gradients flow to ``mu``, the risk model, ``gamma``, ``alpha`` and ``w_prev``.
:class:`MuFactorHead` is the matching network head: features ``(B, F)`` -> ``(mu, factor)``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from gradfolio.errors import ConfigError
from gradfolio.solvers import ConvexProblem, PortfolioConstraints, QPSettings
from gradfolio.solvers.problem import Backend


class ConvexAllocator(nn.Module):
    """Constrained mean-variance allocation layer (see the module docstring).

    Parameters
    ----------
    n_assets
        ``N``.
    constraints
        :class:`~gradfolio.solvers.PortfolioConstraints` (default: budget ``sum w = 1`` only);
        infeasible specs raise :class:`~gradfolio.errors.InfeasibleError` here.
    gamma, alpha
        Default risk aversion and L2 regularization (used when ``forward`` gets none).
    learn_gamma, learn_alpha
        Make the defaults learnable (stored as log-parameters so they stay positive).
    backend
        ``"qp"`` (batched torch active-set method with an interior-point fallback) or ``"cvxpylayers"``.
    cvxpy_constraints
        ``w -> list of cvxpy constraints`` added to the declarative ones (``"cvxpylayers"`` only).
    settings
        :class:`~gradfolio.solvers.QPSettings` of the ``"qp"`` back end (default:
        :func:`~gradfolio.solvers.problem.default_settings`).
    """

    def __init__(
        self,
        n_assets: int,
        constraints: PortfolioConstraints | None = None,
        gamma: float = 1.0,
        alpha: float = 0.0,
        learn_gamma: bool = False,
        learn_alpha: bool = False,
        backend: Backend = "qp",
        cvxpy_constraints: Callable | None = None,
        settings: QPSettings | None = None,
    ) -> None:
        super().__init__()
        for name, value, learn in (("gamma", gamma, learn_gamma), ("alpha", alpha, learn_alpha)):
            if not value >= 0 or (learn and value == 0):
                raise ConfigError(f"ConvexAllocator: {name}={value} must be >= 0 (> 0 when learned).")
        self.problem = ConvexProblem(n_assets, constraints, backend, cvxpy_constraints, settings)
        self.learn_gamma, self.learn_alpha = learn_gamma, learn_alpha
        self.log_gamma = nn.Parameter(torch.tensor(float(gamma)).log()) if learn_gamma else None
        self.log_alpha = nn.Parameter(torch.tensor(float(alpha)).log()) if learn_alpha else None
        self.gamma0, self.alpha0 = float(gamma), float(alpha)

    @property
    def n_assets(self) -> int:
        """Number of assets ``N``."""
        return self.problem.n_assets

    def _default(self, log_param: nn.Parameter | None, value: float, like: Tensor) -> Tensor | float:
        return log_param.exp().to(like.dtype) if log_param is not None else value

    def forward(
        self,
        mu: Tensor,
        cov: Tensor | None = None,
        factor: Tensor | None = None,
        gamma: float | Tensor | None = None,
        alpha: float | Tensor | None = None,
        w_prev: Tensor | None = None,
    ) -> Tensor:
        """Weights ``w (B, N)``.

        Parameters
        ----------
        mu
            Expected returns ``(B, N)``.
        cov, factor
            Covariance ``(B, N, N)`` or factor ``(B, K, N)`` with ``S = F'F`` (exactly one).
        gamma, alpha
            Per-call overrides: scalars or ``(B,)`` tensors (e.g. network outputs), ``>= 0``.
        w_prev
            Previous weights ``(B, N)`` (required with a turnover constraint).
        """
        gamma = self._default(self.log_gamma, self.gamma0, mu) if gamma is None else gamma
        alpha = self._default(self.log_alpha, self.alpha0, mu) if alpha is None else alpha
        return self.problem.solve(mu, cov=cov, factor=factor, gamma=gamma, alpha=alpha, w_prev=w_prev)


class MuFactorHead(nn.Module):
    """Linear head from features to expected returns and a risk factor.

    ``features (B, F) -> mu (B, N), factor (B, K, N)``; pass both to :class:`ConvexAllocator`
    (``S = F'F`` is positive semidefinite by construction; add ``alpha > 0`` for strict convexity).

    Parameters
    ----------
    in_features, n_assets, n_factors
        ``F``, ``N`` and ``K``.
    factor_scale
        Initial scale of the factor entries.
    """

    def __init__(self, in_features: int, n_assets: int, n_factors: int, factor_scale: float = 0.1) -> None:
        super().__init__()
        self.n_assets, self.n_factors = n_assets, n_factors
        self.mu = nn.Linear(in_features, n_assets)
        self.factor = nn.Linear(in_features, n_factors * n_assets)
        with torch.no_grad():
            self.factor.weight.mul_(factor_scale)
            self.factor.bias.normal_(0.0, factor_scale)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu (B, N), factor (B, K, N))`` from ``features (B, F)``."""
        B = features.shape[0]
        return self.mu(features), self.factor(features).view(B, self.n_factors, self.n_assets)


__all__ = ["ConvexAllocator", "MuFactorHead"]
