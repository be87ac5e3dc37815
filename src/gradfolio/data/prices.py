"""Load and validate price tables: the bundled S&P 500 sample or a user CSV/Parquet file.

A price table is *wide*: one ``date`` column (or index) and one numeric column per asset.
Validation raises :class:`~gradfolio.errors.DataError` naming the file, the column and the
row at fault and saying how to fix it. Rows are numbered as the user sees them: in a CSV file
as a spreadsheet shows it (the header is row 1, the first prices row 2); in a Parquet file or a
DataFrame by 0-based position (``frame.iloc[position]``).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gradfolio.errors import ConfigError, DataError

BUNDLED = {"sp500": "sp500.csv.gz"}
"""Bundled data sets: ``sp500`` holds daily prices of 20 S&P 500 stocks, 1990-01-02 to 2022-12-28
(the data set of ``skfolio.datasets.load_sp500_dataset``, BSD-3-Clause)."""

DATE_COLUMNS = ("date", "Date", "DATE", "datetime", "timestamp")

# Everything pandas, pyarrow and the decompressors raise on a file they cannot read.
_READ_ERRORS = (ValueError, OSError, EOFError, zlib.error, pa.ArrowException)


@dataclass(frozen=True)
class _Rows:
    """How messages number the data rows of a table (``i`` is the 0-based position)."""

    word: str
    first: int

    def at(self, i: int) -> str:
        return f"{self.word} {i + self.first}"

    def span(self, i: int, j: int) -> str:
        return f"{self.word}s {i + self.first}-{j + self.first}"


CSV_ROWS = _Rows("row", 2)  # as a spreadsheet shows the file: the header is row 1
POSITIONS = _Rows("position", 0)  # Parquet files and DataFrames: frame.iloc[position]


def check_int(name: str, value: Any, low: int, meaning: str = "") -> None:
    """Raise a ConfigError unless ``value`` is an integer (not a bool) ``>= low``.

    ``name`` is the argument named in the message and ``meaning`` (e.g. ``" (two prices make one
    return)"``) is appended to it; :mod:`gradfolio.data.windows` checks its window lengths with it.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name}={value!r} must be an integer >= {low}{meaning}.")


def _check_unique(names: Iterable[Any], source: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(map(str, names)):
        if name in seen:
            raise DataError(
                f"{source}: columns {seen[name] + 1} and {i + 1} are both named {name!r}; give every column a "
                "unique name (one column per asset)."
            )
        seen[name] = i


def _read_table(path: Path) -> tuple[pd.DataFrame, _Rows]:
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "file not found"
        raise DataError(f"{path}: {what}; pass 'sp500' for the bundled data or the path of a CSV/Parquet file.")
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".parquet", ".pq")):
        kind, rows = "Parquet", POSITIONS
    elif ".csv" in suffixes or suffixes.endswith(".txt"):
        kind, rows = "CSV", CSV_ROWS
    else:
        raise DataError(f"{path}: unknown file type {suffixes or '(none)'!r}; use .csv, .csv.gz or .parquet.")
    if path.stat().st_size == 0:
        raise DataError(
            f"{path}: the file is empty; write a header line 'date,<asset>,...' and one row of prices per date."
        )
    # The raw column names first: pandas renames a repeated CSV name 'A' to 'A.1', pyarrow refuses to read one.
    with _reading(path, kind):
        if kind == "Parquet":
            names = pq.read_schema(path).names
        else:
            names = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
    _check_unique(names, str(path))
    with _reading(path, kind):
        frame = pd.read_parquet(path) if kind == "Parquet" else pd.read_csv(path)
    if not isinstance(frame.index, pd.RangeIndex) and kind == "CSV":  # pandas made surplus first cells an index
        raise DataError(
            f"{path}: rows have more cells than the {len(frame.columns)} names of the header line; name every column "
            "or remove the extra cells."
        )
    return frame, rows


@contextmanager
def _reading(path: Path, kind: str) -> Iterator[None]:
    """Turn whatever pandas, pyarrow or a decompressor raises on an unreadable file into a DataError."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: byte {exc.object[exc.start : exc.start + 1]!r} is not UTF-8 text; save the file as UTF-8 "
            "(in a spreadsheet: 'CSV UTF-8')."
        ) from exc
    except _READ_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = (
            "write it with DataFrame.to_parquet" if kind == "Parquet"
            else "it must be comma-separated, with a header line and one cell per name on every line"
        )
        raise DataError(f"{path}: cannot read the file as {kind} ({first}); {fix}.") from exc


def _parse_dates(raw: pd.Series, source: str, where: str, rows: _Rows) -> pd.DatetimeIndex:
    """Dates of a column; numbers are read as ``YYYYMMDD`` (20200131), not as nanoseconds since 1970."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return pd.DatetimeIndex(raw)
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        text, fmt = raw.astype(str).str.removesuffix(".0"), "%Y%m%d"
    else:
        text, fmt = raw.astype(str), "mixed"
    try:
        return pd.DatetimeIndex(pd.to_datetime(text, format=fmt, errors="coerce"))
    except ValueError:  # pandas refuses to mix time-zone offsets (or naive and zoned dates) in one column
        first, i = _zone_change(text)
        raise DataError(
            f"{source}: {where}, {rows.at(i)}: date {text.iloc[i]!r} has another time-zone offset than "
            f"{text.iloc[first]!r} ({rows.at(first)}); write every date in one time zone, or as YYYY-MM-DD."
        ) from None


def _zone_change(text: pd.Series) -> tuple[int, int]:
    """Positions of the first parsable date and of the first date with another time-zone offset."""
    stamps = [pd.to_datetime(v, format="mixed", errors="coerce") for v in text]
    valid = [i for i, ts in enumerate(stamps) if ts is not pd.NaT]
    first = valid[0] if valid else 0
    return first, next((i for i in valid if stamps[i].utcoffset() != stamps[first].utcoffset()), first)


def _date_index(frame: pd.DataFrame, source: str, rows: _Rows) -> pd.DataFrame:
    name = frame.index.name
    if not isinstance(frame.index, pd.DatetimeIndex) and name in DATE_COLUMNS and name not in frame.columns:
        frame = frame.reset_index()  # e.g. a Parquet file whose 'date' index holds strings
    if isinstance(frame.index, pd.DatetimeIndex):
        where, raw, dates = "the date index", frame.index.to_numpy(), frame.index
    else:
        col = next((c for c in DATE_COLUMNS if c in frame.columns), None)
        if col is None:
            raise DataError(
                f"{source}: no date column; name the first column 'date' (one row per day, one column per asset)."
            )
        where, raw = f"column '{col}'", frame[col].to_numpy()
        dates = _parse_dates(frame[col], source, where, rows)
        frame = frame.drop(columns=[col])
    missing = dates.isna()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        what = "the date is missing" if pd.isna(raw)[i] else f"cannot parse date {str(raw[i])!r}"
        raise DataError(f"{source}: {where}, {rows.at(i)}: {what}; write dates as YYYY-MM-DD (or numbers YYYYMMDD).")
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    frame = frame.set_axis(dates.rename("date"), axis=0)
    dup = frame.index.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataError(f"{source}: duplicate date {frame.index[i].date()} at {rows.at(i)}; keep one row per date.")
    if not frame.index.is_monotonic_increasing:
        i = int(np.flatnonzero(np.diff(frame.index.asi8) < 0)[0]) + 1
        raise DataError(
            f"{source}: dates are not sorted: {frame.index[i].date()} at {rows.at(i)} comes after "
            f"{frame.index[i - 1].date()}; sort the rows by date."
        )
    return frame


def _check_options(ffill_limit: int, min_rows: int) -> None:
    check_int("ffill_limit", ffill_limit, 0, " (the longest run of missing prices that is forward-filled)")
    check_int("min_rows", min_rows, 2, " (two prices make one return)")


def validate_prices(
    frame: pd.DataFrame, source: str = "<DataFrame>", ffill_limit: int = 5, min_rows: int = 2
) -> pd.DataFrame:
    """Check a wide price table and return it cleaned (float64, DatetimeIndex ``date``).

    Parameters
    ----------
    frame
        Prices, one row per date and one column per asset, with a ``date`` column (dates as
        text, datetimes, or ``YYYYMMDD`` numbers) or a ``DatetimeIndex``.
    source
        Name used in error messages; rows are named by 0-based position (``frame.iloc[i]``).
    ffill_limit
        Missing prices are forward-filled for at most this many consecutive rows; a longer gap,
        or a missing first price, is an error. ``0`` forbids any missing price.
    min_rows
        Fewest rows accepted (``>= 2``: two prices make one return).

    Returns
    -------
    DataFrame of shape ``(dates, assets)``; ``attrs["filled"]`` maps each asset to the number
    of missing prices that were forward-filled.

    Raises
    ------
    DataError
        Missing, unparsable, duplicate or unsorted dates; dates with different time-zone offsets;
        repeated column names; non-numeric, non-finite or non-positive prices; a gap longer than
        ``ffill_limit``; fewer than 2 assets; fewer than ``min_rows`` rows.
    ConfigError
        ``ffill_limit`` or ``min_rows`` not an integer in range.
    """
    _check_options(ffill_limit, min_rows)
    return _validate(frame, source, POSITIONS, ffill_limit, min_rows)


def _validate(frame: pd.DataFrame, source: str, rows: _Rows, ffill_limit: int, min_rows: int) -> pd.DataFrame:
    _check_unique(frame.columns, source)
    frame = _date_index(frame, source, rows)
    if frame.shape[1] < 2:
        raise DataError(
            f"{source}: found {frame.shape[1]} asset column(s) ({list(frame.columns)}); a portfolio needs at least 2."
        )
    prices = pd.DataFrame(
        {str(col): _check_column(frame[col], source, str(col), rows, ffill_limit) for col in frame.columns},
        index=frame.index,
    )
    prices.attrs["filled"] = {str(c): int(frame[c].isna().sum()) for c in frame.columns}
    if len(prices) < min_rows:
        why = "two prices make one return" if min_rows == 2 else f"min_rows={min_rows}"
        raise DataError(
            f"{source}: {len(prices)} row(s) of prices, but at least {min_rows} are needed ({why}); "
            "load a longer history."
        )
    return prices


def _check_column(raw: pd.Series, source: str, col: str, rows: _Rows, ffill_limit: int) -> pd.Series:
    """The float64 prices of one asset, checked, with gaps of at most ``ffill_limit`` rows forward-filled."""
    values = pd.to_numeric(raw, errors="coerce").astype(np.float64)

    def place(i: int) -> str:
        return f"{source}: column '{col}', {rows.at(i)} ({raw.index[i].date()})"

    not_number = values.isna() & raw.notna()
    if not_number.any():
        i = int(np.flatnonzero(not_number.to_numpy())[0])
        raise DataError(
            f"{place(i)}: {raw.iloc[i]!r} is not a number; prices must be numeric (leave a cell empty for a missing "
            "price)."
        )
    invalid = values.notna() & ~(np.isfinite(values) & (values > 0))
    if invalid.any():
        i = int(np.flatnonzero(invalid.to_numpy())[0])
        raise DataError(
            f"{place(i)}: price {values.iloc[i]} is not a finite positive number; prices must be finite and > 0 "
            "(use adjusted close prices, not returns)."
        )
    missing = values.isna().to_numpy()
    if not missing.any():
        return values
    if missing[0]:
        raise DataError(f"{place(0)}: the first price is missing; start the table on a date where every asset has one.")
    # Lengths of runs of consecutive missing values, reported at the run's first row.
    run_id = np.cumsum(~missing)
    run_len = pd.Series(missing.astype(int)).groupby(run_id).transform("sum").to_numpy()
    too_long = missing & (run_len > ffill_limit)
    if too_long.any():
        i = int(np.flatnonzero(too_long)[0])
        raise DataError(
            f"{source}: column '{col}', {rows.span(i, i + run_len[i] - 1)} ({values.index[i].date()} on): "
            f"{run_len[i]} consecutive missing prices exceed ffill_limit={ffill_limit}; fill the gap, drop the "
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

    Raises
    ------
    DataError
        A missing, empty, unreadable or non-UTF-8 file, or any problem of :func:`validate_prices`;
        rows of a CSV file are numbered as a spreadsheet shows them (header = row 1), rows of a
        Parquet file by 0-based position.
    ConfigError
        ``ffill_limit`` or ``min_rows`` not an integer in range.

    Examples
    --------
    >>> prices = load_prices("sp500")
    >>> prices.shape
    (8313, 20)
    """
    _check_options(ffill_limit, min_rows)
    name = os.fspath(source)
    if name in BUNDLED:
        with resources.as_file(resources.files("gradfolio.data") / "bundled" / BUNDLED[name]) as path:
            frame, rows = pd.read_csv(path), CSV_ROWS
    else:
        frame, rows = _read_table(Path(name))
    return _validate(frame, name, rows, ffill_limit, min_rows)


__all__ = ["BUNDLED", "load_prices", "validate_prices", "check_int"]
