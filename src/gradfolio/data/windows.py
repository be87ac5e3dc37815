"""Returns, rolling windows ``(X, y)``, time-ordered splits and torch datasets.

A window seen at decision date ``t`` holds ``lookback`` days of returns ending at ``t`` (the
input ``X``), then skips ``gap`` days (decision latency), then holds ``horizon`` days of simple
returns over which the decision is judged (the target ``y``)::

    |<---- lookback ---->|<- gap ->|<---- horizon ---->|
                         t (decision date)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from gradfolio.data.prices import check_int
from gradfolio.errors import ConfigError, DataError
from gradfolio.seeding import make_generator

ReturnKind = Literal["simple", "log"]


def _check_kind(kind: str) -> None:
    if kind not in ("simple", "log"):
        raise ConfigError(f"kind={kind!r}: returns must be 'simple' or 'log'.")


def to_returns(prices: pd.DataFrame, kind: ReturnKind = "simple") -> pd.DataFrame:
    """Period returns of a price table; the first date is dropped.

    Parameters
    ----------
    prices
        Positive prices, shape ``(T + 1, N)``.
    kind
        ``"simple"``: ``P_t / P_{t-1} - 1``; ``"log"``: ``log(P_t / P_{t-1})``.

    Returns
    -------
    DataFrame of shape ``(T, N)``.
    """
    _check_kind(kind)
    ratio = prices / prices.shift(1)
    out = np.log(ratio) if kind == "log" else ratio - 1.0
    return out.iloc[1:]


@dataclass(frozen=True)
class Windows:
    """Rolling windows of one return table (built by :func:`make_windows`).

    Window ``i`` is the decision made at ``dates[i]``: ``X[i]`` is what it sees, ``y[i]`` what
    judges it. All fields are public and read-only (a frozen dataclass); :meth:`subset` and
    :meth:`to` return new objects.

    Attributes
    ----------
    X
        Inputs, shape ``(n, 1, lookback, N)`` (``n`` windows, one channel, ``lookback`` days,
        ``N`` assets): returns of kind ``kind``, in the dtype asked of :func:`make_windows`.
    y
        Targets, shape ``(n, 1, horizon, N)``: the rows of the returns given to
        :func:`make_windows`, never transformed (simple returns, whatever ``kind`` is). With
        ``horizon = 0`` (prediction windows, no future yet) ``y`` is empty: ``(n, 1, 0, N)``.
    dates
        Decision dates, a ``pd.DatetimeIndex`` of length ``n``: ``dates[i]`` is the last day of
        the lookback of window ``i`` (the last row ``X[i]`` sees); its target starts ``gap + 1``
        rows later. In time order, strictly increasing.
    assets
        Asset names (the columns of the returns, as strings), length ``N``, in the order of the
        last axis of ``X`` and ``y``.
    lookback, gap, horizon, step
        The window geometry in rows (days): days seen, days skipped between the decision and the
        target, days judged, days between consecutive decision dates.
    kind
        Return kind of ``X``: ``"simple"`` or ``"log"``.
    """

    X: torch.Tensor
    y: torch.Tensor
    dates: pd.DatetimeIndex
    assets: tuple[str, ...]
    lookback: int
    gap: int
    horizon: int
    step: int
    kind: ReturnKind

    def __len__(self) -> int:
        return self.X.shape[0]

    def subset(self, start: int, stop: int) -> Windows:
        """Windows ``start:stop`` (in time order) as a new :class:`Windows`."""
        return Windows(
            self.X[start:stop], self.y[start:stop], self.dates[start:stop], self.assets,
            self.lookback, self.gap, self.horizon, self.step, self.kind,
        )

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Windows:
        """Move ``X`` and ``y`` to ``device`` / ``dtype``."""
        return Windows(
            self.X.to(device=device, dtype=dtype), self.y.to(device=device, dtype=dtype), self.dates, self.assets,
            self.lookback, self.gap, self.horizon, self.step, self.kind,
        )


def make_windows(
    returns: pd.DataFrame,
    lookback: int,
    gap: int = 0,
    horizon: int = 1,
    step: int = 1,
    kind: ReturnKind = "simple",
    dtype: torch.dtype = torch.float32,
    source: str = "returns",
) -> Windows:
    """Cut a table of simple returns into rolling ``(X, y)`` windows.

    Parameters
    ----------
    returns
        Simple returns, shape ``(T, N)``, indexed by date (``to_returns(prices, "simple")``).
    lookback, gap, horizon
        Days seen, skipped and judged (integers, ``lookback >= 1``, ``gap >= 0``, ``horizon >= 0``).
        ``horizon = 0`` makes *prediction* windows, which have no target (``y`` of shape
        ``(n, 1, 0, N)``): with ``gap = 0`` the last window ends on the last row, i.e. it is the
        window a strategy sees to decide its next rebalance (see
        :meth:`gradfolio.allocation.strategy.SavedStrategy.predict`).
    step
        Days between consecutive decision dates (integer ``>= 1``).
    kind
        Return kind of ``X``: ``"simple"`` (the input rows) or ``"log"`` (``log1p`` of them).
        ``y`` is never transformed: it holds the input rows, i.e. simple returns.
    dtype
        Floating dtype of ``X`` and ``y``.
    source
        Name of the data used in error messages (e.g. the price file).

    Returns
    -------
    Windows
        ``n = floor((T - lookback - gap - horizon) / step) + 1`` windows; ``X`` of shape
        ``(n, 1, lookback, N)``, ``y`` of shape ``(n, 1, horizon, N)``, both in ``dtype`` (the
        values are computed in float64, ``log1p`` included, then cast).

    Raises
    ------
    ConfigError
        A window length that is not an integer in range (booleans are refused).
    DataError
        Fewer than ``lookback + gap + horizon`` rows of returns.
    """
    _check_kind(kind)
    for name, value, low in (("lookback", lookback, 1), ("gap", gap, 0), ("horizon", horizon, 0), ("step", step, 1)):
        check_int(name, value, low)
    span = lookback + gap + horizon
    T = len(returns)
    if T < span:
        raise DataError(
            f"{source}: {T} rows of returns, but one window needs lookback + gap + horizon = {lookback} + {gap} + "
            f"{horizon} = {span} (returns of {span + 1} prices); load a longer history or shorten the windows."
        )
    values = torch.tensor(returns.to_numpy(dtype=np.float64))
    starts = torch.arange(0, T - span + 1, step)
    idx_x = starts[:, None] + torch.arange(lookback)
    idx_y = starts[:, None] + lookback + gap + torch.arange(horizon)
    x = values[idx_x]
    if kind == "log":
        x = torch.log1p(x)
    return Windows(
        X=x.unsqueeze(1).to(dtype),
        y=values[idx_y].unsqueeze(1).to(dtype),
        dates=pd.DatetimeIndex(returns.index[starts.numpy() + lookback - 1]),
        assets=tuple(str(c) for c in returns.columns),
        lookback=lookback, gap=gap, horizon=horizon, step=step, kind=kind,
    )


def time_split(windows: Windows, val_frac: float = 0.15, test_frac: float = 0.15) -> tuple[Windows, Windows, Windows]:
    """Split windows by time into train, validation and test, purging the overlap between them.

    Between consecutive parts ``(gap + horizon) // step`` windows are dropped (``gap + horizon``
    days when ``step = 1``): the first decision date of a later part falls strictly after the last
    day judged by a target of an earlier part, so no target leaks across the split.

    Parameters
    ----------
    windows
        Windows in time order.
    val_frac, test_frac
        Fractions of the windows given to validation and test (``val_frac`` may be 0, which gives
        an empty validation part).

    Returns
    -------
    (train, val, test)

    Raises
    ------
    ConfigError
        Fractions out of range.
    DataError
        Too few windows for at least one test and one training window after the purges.
    """
    if not (0 <= val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise ConfigError(
            f"val_frac={val_frac}, test_frac={test_frac}: need 0 <= val_frac, 0 < test_frac and val_frac + test_frac < 1."
        )
    n = len(windows)
    purge = (windows.gap + windows.horizon) // windows.step
    n_test = round(n * test_frac)
    n_val = round(n * val_frac)
    n_train = n - n_test - n_val - (2 if n_val else 1) * purge
    if n_test < 1:
        raise DataError(
            f"test_frac={test_frac} of {n} windows rounds to 0 test windows; raise test_frac or make more windows "
            f"(a longer history, or a smaller step; step={windows.step})."
        )
    if n_train < 1:
        raise DataError(
            f"{n} windows (step={windows.step}) are too few: {n_test} for test (test_frac={test_frac}), {n_val} for "
            f"validation (val_frac={val_frac}), a purge of {purge} windows ((gap + horizon) // step) before each later "
            f"part and one for training need {n - n_train + 1}; lower val_frac or test_frac, shorten gap or horizon, "
            "or load a longer history."
        )
    val_start = n_train + purge
    test_start = n - n_test
    return windows.subset(0, n_train), windows.subset(val_start, val_start + n_val), windows.subset(test_start, n)


class WindowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A torch ``Dataset`` of ``(X_i, y_i)`` pairs with shapes ``(1, lookback, N)`` and ``(1, horizon, N)``."""

    def __init__(self, windows: Windows):
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.windows.X[i], self.windows.y[i]


def make_loader(
    windows: Windows, batch_size: int = 32, shuffle: bool = True, seed: int | None = 0, drop_last: bool = False
) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    """A ``DataLoader`` over ``windows``; shuffling (within the part only) is seeded by ``seed``."""
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be >= 1.")
    generator = make_generator(seed) if shuffle else None
    return DataLoader(
        WindowDataset(windows), batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last
    )


__all__ = ["ReturnKind", "Windows", "to_returns", "make_windows", "time_split", "WindowDataset", "make_loader"]
