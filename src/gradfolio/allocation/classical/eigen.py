"""Eigen portfolios: the principal components of the covariance matrix as portfolios."""

from __future__ import annotations

import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.errors import ConfigError, DataError


class EigenPortfolio(ClassicalPortfolio):
    """The ``k``-th principal component of the covariance, rescaled to sum one.

    With ``v_k`` the eigenvector of the ``k``-th largest eigenvalue (``k = 0``: the market
    mode), the weights are ``w = v_k / sum_i v_{k,i}``. The sign of an eigenvector is
    arbitrary, and this normalization removes it: ``v`` and ``-v`` give the same ``w``, so the
    weights never depend on the sign chosen by the eigen-solver. ``k = 0`` is long-only whenever
    all correlations are positive (Perron–Frobenius); higher components are long-short
    portfolios whose gross exposure ``sum |w_i|`` can far exceed one.

    Parameters
    ----------
    k
        Which component, ``0 <= k < N``, by decreasing eigenvalue.
    covariance
        ``"sample"`` (default), ``"ledoit_wolf"``, ``"exponential"`` or a callable.
    min_net
        A component whose net exposure ``|sum_i v_i|`` is below ``min_net * sum_i |v_i|`` cannot
        be rescaled to sum one (the weights would explode) and raises :class:`DataError`.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "eigen"

    def __init__(
        self,
        k: int = 0,
        covariance: str | CovarianceEstimator = "sample",
        min_net: float = 1e-6,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(k, int) or k < 0:
            raise ConfigError(f"k={k!r} for EigenPortfolio: use a component index 0 <= k < N.")
        self.k = k
        self.covariance = resolve_covariance(covariance)
        self.min_net = float(min_net)

    def allocate(self, R: Tensor) -> Tensor:
        N = R.shape[-1]
        if self.k >= N:
            raise ConfigError(f"k={self.k} for EigenPortfolio: the windows have only {N} assets.")
        _, vectors = torch.linalg.eigh(self.covariance(R))  # ascending eigenvalues
        v = vectors[..., N - 1 - self.k]
        net = v.sum(dim=-1)
        small = net.abs() < self.min_net * v.abs().sum(dim=-1)
        if bool(small.any()):
            b = int(small.nonzero()[0])
            raise DataError(
                f"X for EigenPortfolio(k={self.k}): component {self.k} of batch element {b} has "
                "zero net exposure and cannot sum to one; use another component k."
            )
        return v / net[:, None]
