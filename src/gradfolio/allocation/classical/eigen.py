"""Eigen portfolios: the principal components of the covariance matrix as portfolios.

With ``v`` the unit eigenvector of the ``k``-th largest eigenvalue ``lambda`` of the covariance
``S`` (per period) and ``s = sign(sum_i v_i)`` (the sign that makes the net exposure positive;
when ``sum_i v_i = 0`` exactly, the sign of the entry of largest ``|v_i|``), three normalizations::

    "net"         w = v / sum_i v_i                          fully invested, sum w = 1
    "gross"       w = s v / sum_i |v_i|                      unit gross exposure, sum |w| = 1
    "volatility"  w = s v * sigma* / sqrt(A lambda)          annualized volatility sigma*

(``A`` periods per year; ``v'Sv = lambda`` for a unit eigenvector, so ``sqrt(A w'Sw) = sigma*``). Each is
free of the eigen-solver's arbitrary sign: ``v`` and ``-v`` give the same ``w``.

Why ``"gross"`` is the default: ``"net"`` divides by the net exposure ``sum v``, which for a
long-short component (and for the market mode of a short window when some correlations are
negative) passes through zero from one rebalance to the next, so the weights explode (a gross
exposure of hundreds) and flip sign; a backtest of it pays turnover far beyond one per
rebalance. ``"gross"`` bounds the exposure (``sum |w| = 1``, turnover at most 2 per rebalance),
keeps the direction of the component, and equals ``"net"`` whenever the component is long-only
(then ``sum |v| = |sum v|``), as the market mode of positively correlated assets is. The rest,
``1 - sum w``, is cash. ``"volatility"`` is the scaling of statistical-arbitrage eigenportfolios
(Avellaneda and Lee, "Statistical arbitrage in the US equities market": each component at a
common risk level); its gross exposure grows as ``lambda`` shrinks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.covariance import CovarianceEstimator, resolve_covariance
from gradfolio.errors import ConfigError, DataError
from gradfolio.risk import TRADING_DAYS

NORMALIZATIONS = ("net", "gross", "volatility")


def net_sign(v: Tensor) -> Tensor:
    """``sign(sum_i v_i)`` per row of ``v (B, N)`` (ties: the sign of the largest ``|v_i|``); shape ``(B,)``."""
    net = v.sum(dim=-1)
    largest = v.gather(-1, v.abs().argmax(dim=-1, keepdim=True))[..., 0]
    s = torch.where(net != 0, torch.sign(net), torch.sign(largest))
    return torch.where(s != 0, s, torch.ones_like(s))


def normalize_component(
    v: Tensor,
    eigenvalue: Tensor,
    normalize: str = "gross",
    target_volatility: float = 0.1,
    periods_per_year: float = TRADING_DAYS,
) -> Tensor:
    """Weights of eigenvectors ``v (B, N)`` with eigenvalues ``(B,)`` (see the module doc); ``(B, N)``.

    ``"net"`` does not check the net exposure (see :class:`EigenPortfolio` ``min_net``).
    """
    if normalize == "net":
        return v / v.sum(dim=-1, keepdim=True)
    s = net_sign(v)[:, None]
    if normalize == "gross":
        return s * v / v.abs().sum(dim=-1, keepdim=True)
    if normalize == "volatility":
        norm = (v * v).sum(dim=-1, keepdim=True).sqrt()  # 1 for eigh's unit vectors
        vol = (periods_per_year * eigenvalue.clamp_min(0.0))[:, None].sqrt() * norm
        return s * v * target_volatility / vol
    raise ConfigError(f"normalize={normalize!r} for EigenPortfolio: use one of {NORMALIZATIONS}.")


class EigenPortfolio(ClassicalPortfolio):
    """The ``k``-th principal component of the covariance as a portfolio.

    ``X (B, C, L, N) -> w (B, N)``. The component is normalized by ``normalize`` (see
    :mod:`gradfolio.allocation.classical.eigen`): ``"gross"`` (default: ``sum |w| = 1``, net
    exposure positive, the rest in cash), ``"net"`` (``w = v / sum v``, fully invested; the
    normalization before there was a choice, unstable for long-short components) or
    ``"volatility"`` (annualized volatility ``target_volatility``). ``k = 0`` (the market
    mode) is long-only whenever all correlations are positive (Perron–Frobenius), and then
    ``"gross"`` and ``"net"`` give the same weights.

    Parameters
    ----------
    k
        Which component, ``0 <= k < N``, by decreasing eigenvalue.
    covariance
        ``"sample"`` (default), ``"ledoit_wolf"``, ``"exponential"`` or a callable.
    normalize
        ``"gross"`` (default), ``"net"`` or ``"volatility"``.
    min_net
        With ``normalize="net"``: a component whose net exposure ``|sum_i v_i|`` is below
        ``min_net * sum_i |v_i|`` cannot be rescaled to sum one and raises :class:`DataError`.
    target_volatility, periods_per_year
        With ``normalize="volatility"``: the annualized volatility ``sqrt(A w'Sw)`` of the
        weights (default 10%) and ``A`` (default 252).
    returns_channel, returns_kind
        See :class:`ClassicalPortfolio`.
    """

    name = "eigen"

    def __init__(
        self,
        k: int = 0,
        covariance: str | CovarianceEstimator = "sample",
        normalize: str = "gross",
        min_net: float = 1e-6,
        target_volatility: float = 0.1,
        periods_per_year: float = TRADING_DAYS,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(k, int) or k < 0:
            raise ConfigError(f"k={k!r} for EigenPortfolio: use a component index 0 <= k < N.")
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize={normalize!r} for EigenPortfolio: use one of {NORMALIZATIONS}.")
        if not target_volatility > 0 or not periods_per_year > 0:
            raise ConfigError(
                f"target_volatility={target_volatility!r}, periods_per_year={periods_per_year!r} for "
                "EigenPortfolio: use positive numbers (e.g. 0.1 and 252)."
            )
        self.k = k
        self.covariance = resolve_covariance(covariance)
        self.normalize = normalize
        self.min_net = float(min_net)
        self.target_volatility = float(target_volatility)
        self.periods_per_year = float(periods_per_year)

    def allocate(self, R: Tensor) -> Tensor:
        N = R.shape[-1]
        if self.k >= N:
            raise ConfigError(f"k={self.k} for EigenPortfolio: the windows have only {N} assets.")
        values, vectors = torch.linalg.eigh(self.covariance(R))  # ascending eigenvalues
        v = vectors[..., N - 1 - self.k]
        if self.normalize == "net":
            small = v.sum(dim=-1).abs() < self.min_net * v.abs().sum(dim=-1)
            if bool(small.any()):
                b = int(small.nonzero()[0])
                raise DataError(
                    f"X for EigenPortfolio(k={self.k}): component {self.k} of batch element {b} has "
                    "zero net exposure and cannot sum to one; use normalize='gross' or another component k."
                )
        return normalize_component(
            v, values[..., N - 1 - self.k], self.normalize, self.target_volatility, self.periods_per_year
        )
