"""Covariance estimators, batched over windows: ``R (B, L, N) -> Sigma (B, N, N)``.

The estimators (the registry :data:`COVARIANCES`), all per period (no annualization; multiply
by 252 for yearly figures):

``sample``
    Unbiased sample covariance (``ddof=1``), as ``numpy.cov`` and skfolio's
    ``EmpiricalCovariance``.
``ledoit_wolf``
    Ledoit–Wolf shrinkage towards ``mu * I`` (``mu`` the mean sample variance) with the
    shrinkage intensity of scikit-learn's ``ledoit_wolf_shrinkage`` (used by skfolio's
    ``LedoitWolf`` and PyPortfolioOpt's ``CovarianceShrinkage.ledoit_wolf``). As in
    scikit-learn, the matrix it shrinks is the biased (``ddof=0``) covariance.
``exponential``
    Exponentially weighted covariance of PyPortfolioOpt's ``exp_cov``: deviations from the
    window mean, weighted ``(1 - alpha)^age`` with ``alpha = 2 / (span + 1)`` and the weights
    normalized to sum one (pandas ``ewm(span=span, adjust=True)``), the newest day having age 0.
``oas``
    Oracle Approximating Shrinkage (Chen, Wiesel, Eldar and Hero) towards ``mu * I`` with
    ``s = min(1, (a + mu^2) / ((L + 1) (a - mu^2 / N)))``, ``a = mean(S_ij^2)``, ``S`` the biased
    covariance: scikit-learn's ``oas`` and skfolio's ``OAS``.
``ewma``
    RiskMetrics exponentially weighted second moment *about zero* with a half-life:
    ``Sigma = sum_t w_t r_t r_t'``, ``w_t = (1 - d) d^age / (1 - d^L)``, ``d = 2^(-1/half_life)``;
    skfolio's ``EWCovariance(half_life)`` (``assume_centered=True``, bias-corrected).
``denoised`` / ``detoned`` / ``gerber``
    See :mod:`gradfolio.allocation.classical.spectral` and
    :mod:`gradfolio.allocation.classical.gerber`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradfolio.allocation.classical.gerber import gerber_covariance
from gradfolio.allocation.classical.spectral import denoised_covariance, detoned_covariance
from gradfolio.errors import ConfigError
from gradfolio.registry import Registry

CovarianceEstimator = Callable[[Tensor], Tensor]


def _centered(R: Tensor) -> Tensor:
    return R - R.mean(dim=-2, keepdim=True)


def sample_covariance(R: Tensor, ddof: int = 1) -> Tensor:
    """Sample covariance of each window.

    Parameters
    ----------
    R
        Returns, shape ``(B, L, N)``.
    ddof
        Delta degrees of freedom: the divisor is ``L - ddof``.

    Returns
    -------
    Tensor of shape ``(B, N, N)``.
    """
    Xc = _centered(R)
    return Xc.mT @ Xc / (R.shape[-2] - ddof)


def ledoit_wolf_shrinkage(R: Tensor) -> Tensor:
    """Ledoit–Wolf shrinkage intensity of each window (scikit-learn's formula).

    Parameters
    ----------
    R
        Returns, shape ``(B, L, N)``.

    Returns
    -------
    Tensor of shape ``(B,)`` with values in ``[0, 1]``.
    """
    L, N = R.shape[-2], R.shape[-1]
    Xc = _centered(R)
    X2 = Xc * Xc
    emp_trace = X2.sum(dim=-2) / L  # (B, N): the biased variances
    mu = emp_trace.sum(dim=-1) / N
    beta_ = (X2.mT @ X2).sum(dim=(-2, -1))
    delta_ = ((Xc.mT @ Xc) ** 2).sum(dim=(-2, -1)) / L**2
    beta = (beta_ / L - delta_) / (N * L)
    delta = (delta_ - 2.0 * mu * emp_trace.sum(dim=-1) + N * mu**2) / N
    beta = torch.minimum(beta, delta)
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    return torch.where(beta > 0, beta / safe, torch.zeros_like(beta))


def ledoit_wolf_covariance(R: Tensor) -> Tensor:
    """Ledoit–Wolf shrunk covariance of each window.

    ``(1 - s) * S + s * mu * I`` with ``S`` the biased (``ddof=0``) sample covariance,
    ``mu = trace(S) / N`` and ``s`` from :func:`ledoit_wolf_shrinkage`.

    Parameters
    ----------
    R
        Returns, shape ``(B, L, N)``.

    Returns
    -------
    Tensor of shape ``(B, N, N)``.
    """
    N = R.shape[-1]
    S = sample_covariance(R, ddof=0)
    s = ledoit_wolf_shrinkage(R)[:, None, None]
    mu = S.diagonal(dim1=-2, dim2=-1).sum(dim=-1)[:, None, None] / N
    eye = torch.eye(N, dtype=R.dtype, device=R.device)
    return (1.0 - s) * S + s * mu * eye


def exponential_covariance(R: Tensor, span: float = 180.0) -> Tensor:
    """Exponentially weighted covariance of each window (PyPortfolioOpt's ``exp_cov``).

    Parameters
    ----------
    R
        Returns, shape ``(B, L, N)``; the last day is the newest.
    span
        Span of the exponential weights, ``alpha = 2 / (span + 1)``; must be ``>= 1``.

    Returns
    -------
    Tensor of shape ``(B, N, N)``.
    """
    if not span >= 1.0:
        raise ConfigError(f"span={span!r} for the exponential covariance: use a span >= 1 (days).")
    L = R.shape[-2]
    alpha = 2.0 / (span + 1.0)
    age = torch.arange(L - 1, -1, -1, dtype=R.dtype, device=R.device)
    weights = (1.0 - alpha) ** age
    weights = weights / weights.sum()
    Xc = _centered(R)
    return Xc.mT @ (Xc * weights[:, None])


def oas_covariance(R: Tensor) -> Tensor:
    """Oracle Approximating Shrinkage covariance of each window (scikit-learn's ``oas``).

    ``(1 - s) S + s mu I`` with ``S`` the biased covariance, ``mu = trace(S) / N``,
    ``a = mean(S_ij^2)`` and ``s = min(1, (a + mu^2) / ((L + 1) (a - mu^2 / N)))`` (``s = 1``
    when the denominator is zero).

    Parameters
    ----------
    R
        Returns, shape ``(B, L, N)``.

    Returns
    -------
    Tensor of shape ``(B, N, N)``.
    """
    L, N = R.shape[-2], R.shape[-1]
    S = sample_covariance(R, ddof=0)
    a = (S * S).mean(dim=(-2, -1))
    mu = S.diagonal(dim1=-2, dim2=-1).sum(dim=-1) / N
    num = a + mu**2
    den = (L + 1) * (a - mu**2 / N)
    safe = torch.where(den == 0, torch.ones_like(den), den)
    s = torch.where(den == 0, torch.ones_like(den), torch.clamp(num / safe, max=1.0))[:, None, None]
    eye = torch.eye(N, dtype=R.dtype, device=R.device)
    return (1.0 - s) * S + s * mu[:, None, None] * eye


def ewma_covariance(R: Tensor, half_life: float = 40.0) -> Tensor:
    """RiskMetrics EWMA covariance of each window (skfolio's ``EWCovariance``).

    ``sum_t w_t r_t r_t'`` about zero (returns not demeaned), ``w_t = (1 - d) d^age / (1 - d^L)``
    with ``d = 2^(-1 / half_life)`` and age 0 for the newest day: the weights sum to one.

    Parameters
    ----------
    R
        Returns, shape ``(B, L, N)``; the last day is the newest.
    half_life
        Days for a weight to halve; must be positive.

    Returns
    -------
    Tensor of shape ``(B, N, N)``.
    """
    if not half_life > 0:
        raise ConfigError(f"half_life={half_life!r} for the ewma covariance: use a positive number of days.")
    L = R.shape[-2]
    d = 2.0 ** (-1.0 / half_life)
    age = torch.arange(L - 1, -1, -1, dtype=R.dtype, device=R.device)
    weights = (1.0 - d) * d**age / (1.0 - d**L)
    return R.mT @ (R * weights[:, None])


COVARIANCES: Registry[Tensor] = Registry("covariance")
"""Covariance estimators ``R (B, L, N) -> (B, N, N)`` by name; their typed keyword options
(``ddof`` of ``"sample"``, ``span`` of ``"exponential"``) are bound by :func:`resolve_covariance`."""
COVARIANCES.register("sample", sample_covariance)
COVARIANCES.register("ledoit_wolf", ledoit_wolf_covariance)
COVARIANCES.register("exponential", exponential_covariance)
COVARIANCES.register("oas", oas_covariance)
COVARIANCES.register("ewma", ewma_covariance)
COVARIANCES.register("denoised", denoised_covariance)
COVARIANCES.register("detoned", detoned_covariance)
COVARIANCES.register("gerber", gerber_covariance)


def resolve_covariance(
    spec: str | CovarianceEstimator, *, where: str = "covariance", **options: Any
) -> CovarianceEstimator:
    """Turn a covariance specification into an estimator ``R (B, L, N) -> (B, N, N)``.

    Parameters
    ----------
    spec
        ``"sample"``, ``"ledoit_wolf"``, ``"exponential"``, ``"oas"``, ``"ewma"``, ``"denoised"``,
        ``"detoned"``, ``"gerber"`` (the names of :data:`COVARIANCES`), or
        any callable with that signature.
    where
        Dotted config path of ``options`` for messages.
    **options
        Keyword arguments bound to a named estimator, validated by its signature (e.g.
        ``span=60`` for ``"exponential"``, ``ddof=0`` for ``"sample"``).

    Returns
    -------
    The estimator: the registered function itself without options, else the function with the
    options bound (``COVARIANCES.bind``).

    Raises
    ------
    ConfigError
        An unknown name, options given with a callable, or a bad option named with its path
        (``covariance.span: Input should be a valid number ...``).
    """
    if callable(spec):
        if options:
            raise ConfigError(
                f"covariance options {sorted(options)} apply to named estimators only; "
                "bind them into your callable instead."
            )
        return spec
    if spec not in COVARIANCES:
        raise ConfigError(f"{where}={spec!r}: use one of {sorted(COVARIANCES.names())} or a callable.")
    return COVARIANCES.bind(spec, where=where, **options)
