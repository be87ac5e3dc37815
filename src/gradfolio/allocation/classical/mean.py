"""Expected-return estimators, batched over windows: ``R (B, L, N) -> mu (B, N)``.

``sample``
    The window mean of the simple returns (what every mean-based portfolio used so far).
``black_litterman``
    The Black-Litterman posterior mean of
    :class:`~gradfolio.allocation.classical.black_litterman.BlackLitterman` (views, prior).

A mean-based portfolio takes ``mean=`` (a name with ``mean_params``, or any callable
``R (B, L, N) -> (B, N)``, e.g. a ``BlackLitterman`` object) and :func:`resolve_mean` turns it
into the estimator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from gradfolio.allocation.classical.black_litterman import BlackLitterman
from gradfolio.errors import ConfigError

MeanEstimator = Callable[[Tensor], Tensor]


def sample_mean(R: Tensor) -> Tensor:
    """Window mean of returns ``R (B, L, N)``; returns ``(B, N)``."""
    return R.mean(dim=-2)


#: Mean estimators by name: a factory taking the ``mean_params`` keywords.
MEANS: dict[str, Callable[..., MeanEstimator]] = {
    "sample": lambda: sample_mean,
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


__all__ = ["MeanEstimator", "sample_mean", "MEANS", "resolve_mean"]
