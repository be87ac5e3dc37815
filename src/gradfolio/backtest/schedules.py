"""Rebalancing schedules: when a walk-forward backtest trades, and to what.

The backtest's candidate dates are every ``rebalance_every`` days (its decision grid). A
schedule decides at which candidates the portfolio trades; between trades the weights drift
with prices and nothing is paid.

:class:`CalendarSchedule`
    Trades at fixed candidates, known in advance (so the strategy is evaluated only there):
    every ``every``-th candidate (``every=m``: every ``m * rebalance_every`` days), or the first
    candidate of each calendar week / month / quarter (``freq="W" | "M" | "Q"``).
:class:`ThresholdSchedule`
    A no-trade band: at every candidate the strategy gives a target ``w*``; the portfolio trades
    only when some drifted weight leaves its band, ``max_i |w_i - w*_i| - band_i > 0``
    (``band`` one number or one per asset). It then trades to the target (``to="target"``), or
    only the assets outside their band, each to the nearest band edge
    ``w*_i + clip(w_i - w*_i, -band_i, band_i)`` (``to="edge"``; what is not traded stays, the
    difference of the sum is cash). The first candidate starts from cash and always trades when
    some target weight exceeds its band.

Without a schedule every candidate trades to its target (the default, ``rebalance_every``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from gradfolio.errors import ConfigError

FREQUENCIES = {"W": "W", "M": "M", "Q": "Q"}


@dataclass(frozen=True)
class CalendarSchedule:
    """Trade at every ``every``-th candidate date, or at the first candidate of each ``freq`` period.

    Parameters
    ----------
    every
        Trade at candidates ``0, every, 2 every, ...`` (default 1: all).
    freq
        ``"W"``, ``"M"`` or ``"Q"``: trade at the first candidate date of each calendar week
        (Monday to Sunday), month or quarter instead (``every`` must then be 1).
    """

    every: int = 1
    freq: Literal["W", "M", "Q"] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"CalendarSchedule every={self.every!r}: use a whole number of candidate dates >= 1.")
        if self.freq is not None and self.freq not in FREQUENCIES:
            raise ConfigError(f"CalendarSchedule freq={self.freq!r}: use 'W', 'M' or 'Q'.")
        if self.freq is not None and self.every != 1:
            raise ConfigError("CalendarSchedule: give every or freq, not both.")

    def mask(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """Boolean ``(P,)``: which of the candidate ``dates`` trade."""
        if self.freq is None:
            return np.arange(len(dates)) % self.every == 0
        period = dates.to_period(FREQUENCIES[self.freq]).asi8
        return np.concatenate([[True], period[1:] != period[:-1]]) if len(dates) else np.zeros(0, dtype=bool)

    def rebalance(self, before: Tensor, target: Tensor) -> Tensor:
        """At a trading date: the target ``(S, N)``."""
        return target


@dataclass(frozen=True)
class ThresholdSchedule:
    """No-trade band around the target weights (see the module doc).

    Parameters
    ----------
    band
        Half-width of the band, one number or one per asset, each ``>= 0``, in weight units.
    to
        ``"target"`` (default) or ``"edge"``.
    """

    band: float | Sequence[float]
    to: Literal["target", "edge"] = "target"
    _band: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        b = torch.as_tensor(self.band, dtype=torch.float64)
        if b.ndim > 1 or not bool(torch.isfinite(b).all()) or bool((b < 0).any()):
            raise ConfigError(f"ThresholdSchedule band={self.band!r}: use one width or one per asset, each finite and >= 0.")
        if self.to not in ("target", "edge"):
            raise ConfigError(f"ThresholdSchedule to={self.to!r}: use 'target' or 'edge'.")
        object.__setattr__(self, "_band", b)

    def mask(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """Every candidate is evaluated (whether it trades depends on the drift)."""
        return np.ones(len(dates), dtype=bool)

    def rebalance(self, before: Tensor, target: Tensor) -> Tensor:
        """Weights after the candidate date, from drifted ``before (S, N)`` and ``target (S, N)``."""
        band = self._band.to(device=target.device, dtype=target.dtype)
        if band.ndim == 1 and band.shape[0] != target.shape[-1]:
            raise ConfigError(
                f"ThresholdSchedule band: {band.shape[0]} per-asset widths for {target.shape[-1]} assets; "
                "give one per asset or a single width."
            )
        gap = before - target
        trade = ((gap.abs() - band) > 0).any(dim=-1, keepdim=True)
        moved = target if self.to == "target" else target + torch.maximum(torch.minimum(gap, band), -band)
        return torch.where(trade, moved, before)


Schedule = CalendarSchedule | ThresholdSchedule

__all__ = ["CalendarSchedule", "ThresholdSchedule", "Schedule"]
