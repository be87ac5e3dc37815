"""Portfolios without an optimizer: equal weight (1/N), inverse volatility, random."""

from __future__ import annotations

import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.errors import DataError
from gradfolio.seeding import make_generator


class EqualWeight(ClassicalPortfolio):
    """The 1/N portfolio: ``w_i = 1 / N`` for every window (skfolio's ``EqualWeighted``).

    Parameters
    ----------
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "equal_weight"

    def allocate(self, R: Tensor) -> Tensor:
        B, _, N = R.shape
        return torch.full((B, N), 1.0 / N, dtype=R.dtype, device=R.device)


def volatilities(cov: Tensor, who: str) -> Tensor:
    """Square roots of the diagonal of ``cov (B, N, N)``; a zero variance is a DataError."""
    var = cov.diagonal(dim1=-2, dim2=-1)
    flat = var <= 0
    if bool(flat.any()):
        b, i = (int(v) for v in flat.nonzero()[0])
        raise DataError(
            f"X for {who}: asset {i} has zero variance in batch element {b} (a constant price); "
            "drop that asset or use a longer lookback."
        )
    return var.sqrt()


class InverseVolatility(ClassicalPortfolio):
    """Weights proportional to ``1 / sigma_i`` (skfolio's ``InverseVolatility``).

    Parameters
    ----------
    covariance
        Covariance estimator whose diagonal gives the variances: ``"sample"`` (default),
        ``"ledoit_wolf"``, ``"exponential"`` or a callable ``(B, L, N) -> (B, N, N)``.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "inverse_volatility"

    def __init__(self, covariance: str | CovarianceEstimator = "sample", **kwargs) -> None:
        super().__init__(**kwargs)
        self.covariance = resolve_covariance(covariance)

    def allocate(self, R: Tensor) -> Tensor:
        inv = 1.0 / volatilities(self.covariance(R), type(self).__name__)
        return inv / inv.sum(dim=-1, keepdim=True)


class InverseVariance(ClassicalPortfolio):
    """Weights proportional to ``1 / sigma_i^2``: the minimum-variance portfolio of ``diag(S)``.

    Matches PyPortfolioOpt's ``EfficientFrontier(None, diag(S)).min_volatility()`` (and
    Riskfolio-Lib's ``rp_optimization`` closed form for a diagonal covariance).

    Parameters
    ----------
    covariance
        Covariance estimator whose diagonal gives the variances (a name of :data:`COVARIANCES`
        or a callable ``(B, L, N) -> (B, N, N)``).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "inverse_variance"

    def __init__(self, covariance: str | CovarianceEstimator = "sample", **kwargs) -> None:
        super().__init__(**kwargs)
        self.covariance = resolve_covariance(covariance)

    def allocate(self, R: Tensor) -> Tensor:
        inv = 1.0 / volatilities(self.covariance(R), type(self).__name__) ** 2
        return inv / inv.sum(dim=-1, keepdim=True)


class RandomPortfolio(ClassicalPortfolio):
    """Long-only weights drawn uniformly on the simplex (Dirichlet(1, ..., 1)), one per window.

    Each call draws fresh weights from the portfolio's generator, so a fixed ``seed`` gives the
    same sequence of draws. The draws are made on the generator's device and then moved to the
    device of ``X``.

    Parameters
    ----------
    seed
        An integer seed, a ``torch.Generator`` (used as is), or ``None`` for a random seed.
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "random"

    def __init__(self, seed: int | torch.Generator | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.generator = make_generator(seed)

    def allocate(self, R: Tensor) -> Tensor:
        B, _, N = R.shape
        e = torch.empty(B, N, dtype=torch.float64, device=self.generator.device)
        e.exponential_(generator=self.generator)
        w = e / e.sum(dim=-1, keepdim=True)
        return w.to(dtype=R.dtype, device=R.device)
