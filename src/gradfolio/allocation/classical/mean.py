"""Expected-return estimators, batched over windows: ``R (B, L, N) -> mu (B, N)``.

``sample``
    The window mean of the simple returns (what every mean-based portfolio used so far).
``james_stein``
    James-Stein shrinkage of the window mean ``m`` towards the target ``t`` (the grand mean
    ``mean(m)``, or with ``vol_weighted_target`` the minimum-variance mean
    ``1' S^-1 m / 1' S^-1 1``), ``S`` the sample covariance (``ddof=1``)::

        beta = (trace(S) - 2 lambda_max(S)) / (L ||m - t||^2),   mu = (1 - beta) m + beta t

    as skfolio's ``ShrunkMu(method=JAMES_STEIN)`` (``beta`` is not clipped, as there).
``black_litterman``
    The Black-Litterman posterior mean of
    :class:`~gradfolio.allocation.classical.black_litterman.BlackLitterman` (views, prior).

A mean-based portfolio takes ``mean=`` (a name with ``mean_params``, or any callable
``R (B, L, N) -> (B, N)``, e.g. a ``BlackLitterman`` object) and :func:`resolve_mean` turns it
into the estimator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from gradfolio.allocation.classical.black_litterman import BlackLitterman
from gradfolio.errors import ConfigError

MeanEstimator = Callable[[Tensor], Tensor]


def sample_mean(R: Tensor) -> Tensor:
    """Window mean of returns ``R (B, L, N)``; returns ``(B, N)``."""
    return R.mean(dim=-2)


def james_stein_mean(R: Tensor, vol_weighted_target: bool = False) -> Tensor:
    """James-Stein shrunk mean of returns ``R (B, L, N)``; returns ``(B, N)`` (see the module text).

    Parameters
    ----------
    R
        Returns, shape ``(B, L, N)``.
    vol_weighted_target
        Shrink towards the minimum-variance portfolio's mean instead of the grand mean.
    """
    L = R.shape[-2]
    m = R.mean(dim=-2)
    Xc = R - m[..., None, :]
    S = Xc.mT @ Xc / (L - 1)
    if vol_weighted_target:
        ones = torch.ones_like(m)[..., None]
        Sinv1 = torch.linalg.solve(S, ones)[..., 0]  # (B, N) = S^-1 1
        t = (Sinv1 * m).sum(-1) / Sinv1.sum(-1)
    else:
        t = m.mean(dim=-1)
    ev = torch.linalg.eigvalsh(S)
    dev = m - t[..., None]
    beta = (ev.sum(-1) - 2 * ev[..., -1]) / (dev * dev).sum(-1) / L
    return (1 - beta[..., None]) * m + beta[..., None] * t[..., None]


def _james_stein(vol_weighted_target: bool = False) -> MeanEstimator:
    if not isinstance(vol_weighted_target, bool):
        raise ConfigError(f"mean_params.vol_weighted_target={vol_weighted_target!r}: use true or false.")
    return functools.partial(james_stein_mean, vol_weighted_target=vol_weighted_target)


#: Mean estimators by name: a factory taking the ``mean_params`` keywords.
MEANS: dict[str, Callable[..., MeanEstimator]] = {
    "sample": lambda: sample_mean,
    "james_stein": _james_stein,
    "black_litterman": BlackLitterman,
}


def resolve_mean(mean: str | MeanEstimator = "sample", params: Mapping[str, Any] | None = None) -> MeanEstimator:
    """The mean estimator named ``mean`` (built with ``params``), or ``mean`` itself if callable.

    Raises
    ------
    ConfigError
        Unknown name, parameters given with a callable, or parameters the estimator rejects.
    """
    if callable(mean):
        if params:
            raise ConfigError("mean_params: only used with a mean estimator given by name; configure the callable itself.")
        return mean
    if mean not in MEANS:
        raise ConfigError(f"mean={mean!r}: use one of {sorted(MEANS)} or a callable R (B, L, N) -> (B, N).")
    try:
        return MEANS[mean](**dict(params or {}))
    except TypeError as exc:
        raise ConfigError(f"mean_params for mean={mean!r}: {exc}; see its docstring for the parameters.") from exc


__all__ = ["MeanEstimator", "sample_mean", "james_stein_mean", "MEANS", "resolve_mean"]
