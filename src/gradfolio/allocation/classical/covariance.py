"""Covariance estimators, batched over windows: ``R (B, L, N) -> Sigma (B, N, N)``.

Three estimators (the registry :data:`COVARIANCES`), all per period (no annualization; multiply
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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

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


COVARIANCES: Registry[Tensor] = Registry("covariance")
"""Covariance estimators ``R (B, L, N) -> (B, N, N)`` by name; their typed keyword options
(``ddof`` of ``"sample"``, ``span`` of ``"exponential"``) are bound by :func:`resolve_covariance`."""
COVARIANCES.register("sample", sample_covariance)
COVARIANCES.register("ledoit_wolf", ledoit_wolf_covariance)
COVARIANCES.register("exponential", exponential_covariance)


def resolve_covariance(
    spec: str | CovarianceEstimator, *, where: str = "covariance", **options: Any
) -> CovarianceEstimator:
    """Turn a covariance specification into an estimator ``R (B, L, N) -> (B, N, N)``.

    Parameters
    ----------
    spec
        ``"sample"``, ``"ledoit_wolf"``, ``"exponential"`` (the names of :data:`COVARIANCES`), or
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
