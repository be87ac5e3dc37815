"""Input checks shared by the statistics: a returns table, a confidence level, a benchmark column, seeds."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd

from gradfolio.errors import ConfigError, DataError

MIN_OBS = 20  # fewest periods any statistic here accepts (block lengths, HAC and moments need a few dozen)


def returns_frame(returns: Any, where: str, min_obs: int = MIN_OBS) -> pd.DataFrame:
    """``returns`` as a float64 DataFrame ``(T, strategies)``; raise :class:`DataError` on bad data.

    A Series becomes one column (named after the Series, else ``"returns"``); a 1-D or 2-D array
    gets columns ``"0", "1", ...``. ``where`` names the calling function in messages.
    """
    if isinstance(returns, pd.Series):
        frame = returns.to_frame(name=returns.name if returns.name is not None else "returns")
    elif isinstance(returns, pd.DataFrame):
        frame = returns
    else:
        arr = np.asarray(returns)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise DataError(f"{where}: returns must be (T, strategies), got shape {arr.shape}; pass a DataFrame.")
        frame = pd.DataFrame(arr, columns=[str(i) for i in range(arr.shape[1])])
    try:
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: returns are not numeric ({exc}); pass a numeric DataFrame (T, strategies).") from None
    if frame.shape[1] == 0:
        raise DataError(f"{where}: returns have no columns; pass at least one strategy's returns.")
    if values.shape[0] < min_obs:
        raise DataError(
            f"{where}: returns have {values.shape[0]} rows but at least {min_obs} periods are needed; "
            "pass a longer series."
        )
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DataError(
            f"{where}: returns column {frame.columns[col]!r} has a NaN or infinite value at row {row} "
            f"(index {frame.index[row]!r}); drop or fill those rows (e.g. returns.dropna()) first."
        )
    flat = values.std(axis=0) == 0
    if flat.any():
        col = int(np.flatnonzero(flat)[0])
        raise DataError(
            f"{where}: returns column {frame.columns[col]!r} is constant, so its Sharpe ratio is undefined; "
            "drop that column."
        )
    return pd.DataFrame(values, index=frame.index, columns=[str(c) for c in frame.columns])


def check_level(level: float, name: str = "level", where: str = "") -> None:
    """Raise :class:`ConfigError` unless ``0 < level < 1``."""
    ok = isinstance(level, numbers.Real) and not isinstance(level, bool) and 0.0 < float(level) < 1.0
    if not ok:
        raise ConfigError(f"{where}: {name}={level!r} must lie strictly between 0 and 1 (e.g. 0.95).")


def check_int(value: Any, name: str, low: int, where: str) -> int:
    """``value`` as an int ``>= low``; raise :class:`ConfigError` otherwise (booleans are refused)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or int(value) < low:
        raise ConfigError(f"{where}: {name}={value!r} must be an integer >= {low}.")
    return int(value)


def check_choice(value: str, name: str, choices: tuple[str, ...], where: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{where}: {name}={value!r} is not one of {list(choices)}.")


def check_benchmark(frame: pd.DataFrame, benchmark: str, where: str) -> None:
    """Raise :class:`ConfigError` unless ``benchmark`` is a column of ``frame``."""
    if benchmark not in frame.columns:
        raise ConfigError(
            f"{where}: benchmark={benchmark!r} is not a column of returns (columns: {list(frame.columns)}); "
            "pass one of those names as benchmark=."
        )


def child_seeds(seed: int | None, n: int) -> list[int]:
    """``n`` independent integer seeds derived from ``seed`` (``None``: fresh entropy)."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]
