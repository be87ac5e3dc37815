"""Factor risk models, batched over windows, and the portfolio solved in factor form.

A factor model writes the covariance as ``S = B F B' + D`` (exposures ``B (N, K)``, factor
covariance ``F (K, K)``, diagonal specific variances ``D``) and is kept as loadings
``L = B chol(F)`` (``S = L L' + diag(d)``): ``O(N K)`` numbers, never the ``N x N`` matrix.

``statistical_factor_model(R, n_factors)`` (PCA)
    The truncated SVD of the centred returns ``Xc = U Sigma V'`` gives the ``K`` leading
    principal components: ``L = V_K Sigma_K / sqrt(T - 1)`` and ``d = var(R) - rowsum(L^2)``
    (the residual variances, so that ``diag(S)`` is the sample variance); the mean is the
    sample mean. Peer: the ``K`` leading eigenpairs of ``numpy.cov``.
``observed_factor_model(R, factors)`` (time-series regression)
    Per asset, OLS ``r_t = alpha + B f_t + e_t`` on the observed factor returns ``f_t``;
    ``F`` the sample covariance (``ddof=1``) of the factors, ``d`` the variance (``ddof=1``) of
    the residuals, the mean ``alpha + B mean(f)``. Peer: skfolio's
    ``TimeSeriesFactorModel(LoadingMatrixRegression(LinearRegression()))`` (mean and
    covariance), e.g. with the factors of ``skfolio.datasets.load_factors_dataset``.

:class:`FactorMeanVariance` solves ``max mu'w - lambda w'Sw`` (or the minimum variance) with
:func:`gradfolio.solvers.factor_qp.solve_factor_qp`, which uses the Woodbury identity instead of
``S``: ``O(N K^2)`` per iteration, so that ``N = 500-2,000`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradfolio.allocation.classical.mean import MeanEstimator, resolve_mean, sample_mean

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.errors import ConfigError, DataError
from gradfolio.solvers.factor_qp import solve_factor_qp


@dataclass(frozen=True)
class FactorModel:
    """Mean and factor covariance ``S = L L' + diag(d)`` of ``B`` windows.

    Attributes
    ----------
    mean
        ``(B, N)`` expected returns.
    loadings
        ``L (B, N, K)``.
    specific
        ``d (B, N)`` specific variances.
    """

    mean: Tensor
    loadings: Tensor
    specific: Tensor

    def covariance(self) -> Tensor:
        """The dense ``(B, N, N)`` covariance (for checks and small ``N`` only)."""
        return self.loadings @ self.loadings.mT + torch.diag_embed(self.specific)


def statistical_factor_model(R: Tensor, n_factors: int = 5, floor: float = 1e-12) -> FactorModel:
    """PCA factor model of returns ``R (B, T, N)`` with ``K = n_factors`` components.

    Parameters
    ----------
    R
        Returns, shape ``(B, T, N)``.
    n_factors
        ``K``, ``1 <= K < min(T, N)``.
    floor
        Smallest specific variance kept (residual variances are floored at ``floor`` times the
        mean variance).

    Returns
    -------
    :class:`FactorModel` with ``loadings (B, N, K)``.
    """
    T, N = R.shape[-2], R.shape[-1]
    if not isinstance(n_factors, int) or not 1 <= n_factors < min(T, N):
        raise ConfigError(f"n_factors={n_factors!r} for the statistical factor model: use 1 <= n_factors < {min(T, N)}.")
    mean = R.mean(dim=-2)
    Xc = R - mean[..., None, :]
    _, s, Vh = torch.linalg.svd(Xc, full_matrices=False)
    L = Vh[..., :n_factors, :].mT * (s[..., None, :n_factors] / (T - 1) ** 0.5)
    var = Xc.square().sum(dim=-2) / (T - 1)
    d = (var - L.square().sum(-1)).clamp_min(floor * var.mean(-1, keepdim=True))
    return FactorModel(mean, L, d)


def observed_factor_model(R: Tensor, factors: Tensor) -> FactorModel:
    """Time-series regression factor model of ``R (B, T, N)`` on factor returns ``factors (B, T, K)``.

    Returns
    -------
    :class:`FactorModel` with ``loadings = B chol(F)`` of shape ``(B, N, K)``.

    Raises
    ------
    DataError
        Shapes that do not match, or fewer than ``K + 2`` days.
    """
    if factors.ndim != 3 or factors.shape[:2] != R.shape[:2]:
        raise DataError(
            f"factors for observed_factor_model: expected (B, T, K) with the (B, T) of R {tuple(R.shape[:2])}, "
            f"got {tuple(factors.shape)}; align the factor returns with the asset returns."
        )
    T, K = factors.shape[-2], factors.shape[-1]
    if T < K + 2:
        raise DataError(f"observed_factor_model: {T} days cannot fit {K} factors with an intercept; use a longer window.")
    fm = factors.mean(dim=-2, keepdim=True)
    Fc = factors - fm
    rm = R.mean(dim=-2, keepdim=True)
    Rc = R - rm
    beta = torch.linalg.solve(Fc.mT @ Fc, Fc.mT @ Rc).mT  # (B, N, K)
    resid = Rc - Fc @ beta.mT
    d = resid.square().sum(dim=-2) / (T - 1)
    F = Fc.mT @ Fc / (T - 1)
    L = beta @ torch.linalg.cholesky(F)
    mean = rm[..., 0, :]  # alpha + beta mean(f) is the sample mean under OLS with an intercept
    return FactorModel(mean, L, d)


class FactorMeanVariance(ClassicalPortfolio):
    """Long-only mean-variance portfolio on a PCA factor model, solved in factor form.

    ``max mu'w - lambda w'(L L' + diag d) w`` s.t. ``1'w = 1``, ``w >= 0`` (``risk_aversion=None``:
    the minimum variance), with :func:`statistical_factor_model`; no ``N x N`` matrix is formed.

    Parameters
    ----------
    n_factors
        Principal components kept.
    risk_aversion
        ``lambda`` (per-period units), or ``None`` for the minimum-variance portfolio.
    mean, mean_params
        Expected-return estimator ``mu``: ``"sample"`` (default, the factor model's mean, which
        is the window mean), ``"james_stein"``, ``"black_litterman"`` (with ``mean_params`` its
        keywords) or any callable ``R (B, L, N) -> mu (B, N)``; see
        :mod:`gradfolio.allocation.classical.mean`. Unused with ``risk_aversion=None``.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "factor_mean_variance"

    def __init__(
        self,
        n_factors: int = 5,
        risk_aversion: float | None = None,
        mean: str | MeanEstimator = "sample",
        mean_params: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.mean = resolve_mean(mean, mean_params)
        if not isinstance(n_factors, int) or n_factors < 1:
            raise ConfigError(f"n_factors={n_factors!r} for FactorMeanVariance: use a positive integer.")
        if risk_aversion is not None and not risk_aversion > 0:
            raise ConfigError(f"risk_aversion={risk_aversion!r} for FactorMeanVariance: use a positive number or None.")
        self.n_factors, self.risk_aversion = n_factors, risk_aversion

    def allocate(self, R: Tensor) -> Tensor:
        model = statistical_factor_model(R, self.n_factors)
        if self.risk_aversion is None:
            q = torch.zeros_like(model.mean)
            return solve_factor_qp(q, model.loadings, model.specific)
        lam = self.risk_aversion
        mu = model.mean if self.mean is sample_mean else self.mean(R).to(model.mean.dtype)
        # max mu'w - lam w'Sw  <=>  min 1/2 w'(2 lam S)w - mu'w
        return solve_factor_qp(-mu, model.loadings * (2 * lam) ** 0.5, model.specific * 2 * lam)


__all__ = ["FactorModel", "statistical_factor_model", "observed_factor_model", "FactorMeanVariance"]
