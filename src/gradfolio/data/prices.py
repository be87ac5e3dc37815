"""Load and validate price tables: the bundled S&P 500 sample or a user CSV/Parquet file.

A price table is *wide*: one ``date`` column (or index) and one numeric column per asset.
Validation raises :class:`~gradfolio.errors.DataError` naming the file, the column and the
row at fault and saying how to fix it.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from gradfolio.errors import DataError

BUNDLED = {"sp500": "sp500.csv.gz"}
"""Bundled data sets: ``sp500`` holds daily prices of 20 S&P 500 stocks, 1990-01-02 to 2022-12-28
(the data set of ``skfolio.datasets.load_sp500_dataset``, BSD-3-Clause)."""

DATE_COLUMNS = ("date", "Date", "DATE", "datetime", "timestamp")


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found; pass 'sp500' for the bundled data or the path of a CSV/Parquet file.")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if ".csv" in suffixes or suffixes.endswith(".txt"):
            return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read the file ({first}); it must be a CSV or Parquet price table.") from exc
    raise DataError(f"{path}: unknown file type {suffixes or '(none)'!r}; use .csv, .csv.gz or .parquet.")


def _date_index(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.copy()
        frame.index.name = "date"
    else:
        col = next((c for c in DATE_COLUMNS if c in frame.columns), None)
        if col is None:
            raise DataError(
                f"{source}: no date column; name the first column 'date' (one row per day, one column per asset)."
            )
        parsed = pd.to_datetime(frame[col], errors="coerce", format="mixed")
        bad = parsed.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{source}: column '{col}', row {row + 2} (line in file): cannot parse date {frame[col].iloc[row]!r}; "
                "write dates as YYYY-MM-DD."
            )
        frame = frame.drop(columns=[col]).set_axis(pd.DatetimeIndex(parsed, name="date"), axis=0)
    if frame.index.tz is not None:
        frame.index = frame.index.tz_localize(None)
    dup = frame.index.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataError(
            f"{source}: duplicate date {frame.index[row].date()} at row {row + 2}; keep one row per date."
        )
    if not frame.index.is_monotonic_increasing:
        row = int(np.flatnonzero(np.diff(frame.index.asi8) < 0)[0]) + 1
        raise DataError(
            f"{source}: dates are not sorted: {frame.index[row].date()} at row {row + 2} comes after "
            f"{frame.index[row - 1].date()}; sort the rows by date."
        )
    return frame


def validate_prices(
    frame: pd.DataFrame, source: str = "<DataFrame>", ffill_limit: int = 5, min_rows: int = 2
) -> pd.DataFrame:
    """Check a wide price table and return it cleaned (float64, DatetimeIndex ``date``).

    Parameters
    ----------
    frame
        Prices, one row per date and one column per asset, with a ``date`` column or a
        ``DatetimeIndex``.
    source
        Name used in error messages (the file path).
    ffill_limit
        Missing prices are forward-filled for at most this many consecutive rows; a longer gap,
        or a missing first price, is an error. ``0`` forbids any missing price.
    min_rows
        Fewest rows accepted (e.g. ``lookback + gap + horizon + 1`` for one window of returns).

    Returns
    -------
    DataFrame of shape ``(dates, assets)``; ``attrs["filled"]`` maps each asset to the number
    of missing prices that were forward-filled.

    Raises
    ------
    DataError
        Unparsable, duplicate or unsorted dates; non-numeric or non-positive prices; a gap longer
        than ``ffill_limit``; fewer than 2 assets; fewer than ``min_rows`` rows.
    """
    frame = _date_index(frame, source)
    if frame.shape[1] < 2:
        raise DataError(
            f"{source}: found {frame.shape[1]} asset column(s) ({list(frame.columns)}); a portfolio needs at least 2."
        )
    out = {}
    for col in frame.columns:
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() & raw.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{source}: column '{col}', row {row + 2} ({frame.index[row].date()}): {raw.iloc[row]!r} is not a "
                "number; prices must be numeric (leave a cell empty for a missing price)."
            )
        nonpos = values <= 0
        if nonpos.any():
            row = int(np.flatnonzero(nonpos.to_numpy())[0])
            raise DataError(
                f"{source}: column '{col}', row {row + 2} ({frame.index[row].date()}): price {values.iloc[row]} is not "
                "positive; prices must be > 0 (use adjusted close prices, not returns)."
            )
        out[str(col)] = _fill_gaps(values.astype(np.float64), source, str(col), ffill_limit)
    prices = pd.DataFrame(out, index=frame.index)
    prices.attrs["filled"] = {str(c): int(frame[c].isna().sum()) for c in frame.columns}
    if len(prices) < min_rows:
        raise DataError(
            f"{source}: {len(prices)} rows of prices, but at least {min_rows} are needed "
            "(lookback + gap + horizon + 1); load a longer history or shorten the windows."
        )
    return prices


def _fill_gaps(values: pd.Series, source: str, col: str, ffill_limit: int) -> pd.Series:
    missing = values.isna().to_numpy()
    if not missing.any():
        return values
    if missing[0]:
        raise DataError(
            f"{source}: column '{col}', row 2 ({values.index[0].date()}): the first price is missing; "
            "start the table on a date where every asset has a price."
        )
    # Lengths of runs of consecutive missing values, reported at the run's first row.
    run_id = np.cumsum(~missing)
    run_len = pd.Series(missing.astype(int)).groupby(run_id).transform("sum").to_numpy()
    too_long = missing & (run_len > ffill_limit)
    if too_long.any():
        row = int(np.flatnonzero(too_long)[0])
        raise DataError(
            f"{source}: column '{col}', rows {row + 2}-{row + 1 + run_len[row]} ({values.index[row].date()} on): "
            f"{run_len[row]} consecutive missing prices exceed ffill_limit={ffill_limit}; fill the gap, drop the "
            "asset, or raise ffill_limit."
        )
    return values.ffill()


def load_prices(source: str | os.PathLike[str] = "sp500", ffill_limit: int = 5, min_rows: int = 2) -> pd.DataFrame:
    """Load a validated wide price table.

    Parameters
    ----------
    source
        ``"sp500"`` for the bundled data set, or the path of a CSV (optionally gzipped) or
        Parquet file with a ``date`` column and one price column per asset.
    ffill_limit, min_rows
        See :func:`validate_prices`.

    Returns
    -------
    DataFrame of shape ``(dates, assets)``, float64 prices, ``DatetimeIndex`` named ``date``.

    Examples
    --------
    >>> prices = load_prices("sp500")
    >>> prices.shape
    (8313, 20)
    """
    name = os.fspath(source)
    if name in BUNDLED:
        with resources.as_file(resources.files("gradfolio.data") / "bundled" / BUNDLED[name]) as path:
            return validate_prices(pd.read_csv(path), source=name, ffill_limit=ffill_limit, min_rows=min_rows)
    path = Path(name)
    return validate_prices(_read_table(path), source=str(path), ffill_limit=ffill_limit, min_rows=min_rows)


__all__ = ["BUNDLED", "load_prices", "validate_prices"]
