"""The common interface of the classical benchmark portfolios.

Every benchmark is a :class:`torch.nn.Module` with the same call signature as an allocation
network: ``portfolio(X) -> w`` with ``X`` of shape ``(B, C, L, N)`` (batch of windows,
channels, lookback days, assets) and ``w`` of shape ``(B, N)``. Each of the ``B`` windows is a
rebalance date; all of them are allocated at once.

Only one channel of ``X`` is used: ``returns_channel`` (default 0) holds the asset returns,
either simple (``P_t / P_{t-1} - 1``) or log (``log(P_t / P_{t-1})``) returns as stated by
``returns_kind``. Log returns are turned into simple returns (``expm1``) before any estimate,
so that every benchmark estimates its moments, drawdowns and tail losses from the same simple
returns that the portfolio earns (``r_t = sum_i w_i R_{t,i}``), whatever the input kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal, get_args

import torch
from torch import Tensor

from gradfolio.errors import ConfigError, DataError, InfeasibleError

ReturnsKind = Literal["simple", "log"]
RETURN_KINDS: tuple[str, ...] = get_args(ReturnsKind)


def confidence_level(beta: float, who: str) -> float:
    """``beta`` as a float, checked to be a confidence level in ``(0, 1)`` (CVaR, CDaR, EVaR portfolios).

    Raises
    ------
    ConfigError
        ``beta`` outside ``(0, 1)``, naming ``who``.
    """
    if not 0.0 < beta < 1.0:
        raise ConfigError(f"beta={beta!r} for {who}: use a confidence level in (0, 1), e.g. 0.95.")
    return float(beta)


def positive_excess(R: Tensor, risk_free: float, who: str, mean: Tensor | None = None) -> Tensor:
    """Mean excess returns over ``risk_free``, checked for a maximum-ratio portfolio.

    Parameters
    ----------
    R
        Simple returns, shape ``(B, L, N)``.
    risk_free
        Risk-free return per period.
    who
        Name of the portfolio, for the message.
    mean
        Expected returns ``(B, N)`` (default: the window mean of ``R``).

    Returns
    -------
    Tensor of shape ``(B, N)``: ``mean_t R[b, t, i] - risk_free`` (or ``mean - risk_free``).

    Raises
    ------
    InfeasibleError
        Some window has no asset with a mean above ``risk_free`` (no maximum-ratio portfolio
        exists there). The windows are named, and their batch indices are the error's ``rows``
        attribute, so that a backtest can allocate the other windows in one call.
    """
    excess = (R.mean(dim=-2) if mean is None else mean) - risk_free
    dead = (excess <= 0).all(dim=-1)
    if bool(dead.any()):
        rows = [int(b) for b in dead.nonzero().flatten()]
        listed = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise InfeasibleError(
            f"{who}: no asset has a mean return above risk_free={risk_free} in batch "
            f"element{'s' if len(rows) > 1 else ''} {listed}, so the maximum-ratio portfolio does not "
            "exist; lower risk_free or use a minimum-risk portfolio for such windows.",
            rows=rows,
        )
    return excess


class ClassicalPortfolio(torch.nn.Module, ABC):
    """Base class: window of returns ``X (B, C, L, N)`` -> weights ``w (B, N)``.

    Parameters
    ----------
    returns_channel
        Index of the channel of ``X`` that holds the asset returns.
    returns_kind
        ``"simple"`` or ``"log"``: the kind of returns stored in that channel.

    Attributes
    ----------
    name
        Short name of the portfolio (used as a label in backtests and reports).
    min_lookback
        Fewest lookback days the estimator accepts.
    """

    name: ClassVar[str] = "classical"
    min_lookback: ClassVar[int] = 2

    def __init__(self, *, returns_channel: int = 0, returns_kind: ReturnsKind = "simple") -> None:
        super().__init__()
        if returns_kind not in RETURN_KINDS:
            raise ConfigError(
                f"returns_kind={returns_kind!r} for {type(self).__name__}: use 'simple' or 'log'."
            )
        if not isinstance(returns_channel, int) or returns_channel < 0:
            raise ConfigError(
                f"returns_channel={returns_channel!r} for {type(self).__name__}: "
                "use a non-negative channel index."
            )
        self.returns_channel = returns_channel
        self.returns_kind = returns_kind

    def returns(self, X: Tensor) -> Tensor:
        """Simple returns of the returns channel, after validating ``X``.

        Parameters
        ----------
        X
            Windows, shape ``(B, C, L, N)``.

        Returns
        -------
        Tensor of shape ``(B, L, N)``: simple returns, same dtype and device as ``X``.

        Raises
        ------
        DataError
            ``X`` is not 4-dimensional, too short, or holds a non-finite return (the batch
            element, day and asset are named).
        ConfigError
            ``returns_channel`` is not a channel of ``X``.
        """
        who = type(self).__name__
        if not isinstance(X, Tensor) or X.ndim != 4:
            shape = tuple(X.shape) if isinstance(X, Tensor) else type(X).__name__
            raise DataError(
                f"X for {who}: expected a tensor of shape (batch, channels, lookback, assets), "
                f"got {shape}; add the missing axes (e.g. X[None, None])."
            )
        B, C, L, N = X.shape
        if self.returns_channel >= C:
            raise ConfigError(
                f"returns_channel={self.returns_channel} for {who}: X has only {C} channel(s); "
                "pick the channel that holds the returns."
            )
        if L < self.min_lookback or N < 1 or B < 1:
            raise DataError(
                f"X for {who}: shape {tuple(X.shape)} needs at least one window, one asset and "
                f"{self.min_lookback} lookback days; use a longer lookback."
            )
        R = X[:, self.returns_channel]
        bad = ~torch.isfinite(R)
        if bool(bad.any()):
            b, t, i = (int(v) for v in bad.nonzero()[0])
            raise DataError(
                f"X for {who}: non-finite return at batch element {b}, day {t}, asset {i}; "
                "fill or drop missing prices before making windows."
            )
        if self.returns_kind == "log":
            R = torch.expm1(R)
        return R

    def forward(self, X: Tensor) -> Tensor:
        """Weights for every window.

        Parameters
        ----------
        X
            Windows, shape ``(B, C, L, N)``.

        Returns
        -------
        Tensor of shape ``(B, N)``: weights summing to one per row.
        """
        return self.allocate(self.returns(X))

    @abstractmethod
    def allocate(self, R: Tensor) -> Tensor:
        """Weights from simple returns ``R`` of shape ``(B, L, N)``; returns ``(B, N)``."""

    def extra_repr(self) -> str:
        return f"returns_channel={self.returns_channel}, returns_kind={self.returns_kind!r}"
