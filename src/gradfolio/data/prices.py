"""Load and validate price tables: the bundled S&P 500 sample or a user CSV/Parquet file.

A price table is *wide*: one ``date`` column (or index) and one numeric column per asset.
Validation raises :class:`~gradfolio.errors.DataError` naming the file, the column and the
row at fault and saying how to fix it. Rows are numbered as the user sees them: in a CSV file
by the file's line number (the header is row 1, the first prices row 2, blank lines counted); in
a Parquet file or a DataFrame by 0-based position (``frame.iloc[position]``). Nothing is guessed:
ambiguous ``dd/mm/yyyy`` versus ``mm/dd/yyyy`` dates, two rows on one day, a semicolon-delimited
file, or compressed/Parquet bytes in a ``.csv`` file are each named instead of misread.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gradfolio.data.dates import check_date_options, parse_dates
from gradfolio.errors import ConfigError, DataError

Duplicates = Literal["error", "last"]

BUNDLED = {"sp500": "sp500.csv.gz"}
"""Bundled data sets: ``sp500`` holds daily prices of 20 S&P 500 stocks, 1990-01-02 to 2022-12-28
(the data set of ``skfolio.datasets.load_sp500_dataset``, BSD-3-Clause)."""

DATE_COLUMNS = ("date", "Date", "DATE", "datetime", "timestamp")

# Everything pandas, pyarrow and the decompressors raise on a file they cannot read.
_READ_ERRORS = (ValueError, OSError, EOFError, zlib.error, pa.ArrowException)


@dataclass(frozen=True)
class _Rows:
    """How messages number the data rows of a table (``i`` is the 0-based position).

    ``numbers`` (when set) holds the number shown for each position, e.g. the file's line
    numbers of a CSV file with blank lines, or the rows kept after ``duplicates="last"``.
    """

    word: str
    first: int
    numbers: tuple[int, ...] | None = None

    def number(self, i: int) -> int:
        return self.numbers[i] if self.numbers is not None else i + self.first

    def at(self, i: int) -> str:
        return f"{self.word} {self.number(i)}"

    def span(self, i: int, j: int) -> str:
        return f"{self.word}s {self.number(i)}-{self.number(j)}"

    def keep(self, mask: np.ndarray) -> _Rows:
        """The numbering of the rows where ``mask`` (shape ``(rows,)``) is true."""
        numbers = np.asarray(self.numbers) if self.numbers is not None else np.arange(len(mask)) + self.first
        return replace(self, numbers=tuple(int(n) for n in numbers[mask]))


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


#: What the first bytes of a file say it holds (a CSV file must be text).
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed data", ".gz"),
    (b"BZh", "bzip2-compressed data", ".bz2"),
    (b"\xfd7zXZ\x00", "xz-compressed data", ".xz"),
    (b"PAR1", "Parquet data", ".parquet"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook or a zipped file)", ".zip"),
)
_DECOMPRESS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}


def _read_head(path: Path, size: int = 8) -> bytes:
    """The first ``size`` bytes of ``path``; an unreadable file is a DataError saying why."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except PermissionError:
        raise DataError(
            f"{path}: permission denied: this user may not read the file; change its permissions (chmod u+r) or "
            "copy it to a readable place."
        ) from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not a file; pass the path of a CSV/Parquet file.") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot open the file ({exc.strerror or exc}); check the path.") from None


def _csv_text(path: Path, suffixes: str) -> str | None:
    """The decoded text of a CSV file (decompressed by its suffix), or ``None`` for a zip archive (pandas reads it).

    Content that does not match the name (gzip or Parquet bytes in a ``.csv`` file) is a DataError
    saying what the content is.
    """
    head = _read_head(path)
    expected = next((ext for ext in _DECOMPRESS if suffixes.endswith(ext)), "")
    if suffixes.endswith(".zip"):
        return None
    for magic, what, ext in _MAGIC:
        if head.startswith(magic) and ext != expected:
            fix = (
                f"rename it to {path.stem}.parquet" if ext == ".parquet"
                else "export the sheet as 'CSV UTF-8'" if ext == ".zip"
                else f"rename it to {path.name}{ext} (or decompress it)"
            )
            raise DataError(f"{path}: the file holds {what}, not CSV text; {fix}.")
    with _reading(path, "CSV"):
        raw = path.read_bytes()
        if expected:
            raw = _DECOMPRESS[expected](raw)
        return raw.decode("utf-8-sig")


def _line_numbers(text: str, rows: int) -> tuple[int, ...] | None:
    """The file line number of each data row (pandas skips empty lines); ``None`` if they cannot be matched."""
    lines = [n for n, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1) if line != ""]
    numbers = tuple(lines[1 : rows + 1])  # lines[0] is the header
    return numbers if len(numbers) == rows else None


def _check_delimiter(path: Path, text: str, sep: str | None) -> None:
    """Name the delimiter of a header line that has no comma (semicolon or tab), unless ``sep`` was given."""
    if sep is not None:
        return
    header = next((line for line in text.splitlines() if line.strip()), "")
    if "," in header:
        return
    for char, name, shown in ((";", "semicolon", "';'"), ("\t", "tab", "'\\t'")):
        if char in header:
            raise DataError(
                f"{path}: the file is {name}-delimited (header {header[:60]!r}); pass sep={shown} (and "
                "decimal=',' if prices are written 1,5) or save it comma-separated."
            )


def _read_table(path: Path, sep: str | None = None, decimal: str = ".") -> tuple[pd.DataFrame, _Rows]:
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
    if kind == "Parquet":
        _read_head(path)
        with _reading(path, kind):
            names = pq.read_schema(path).names
        _check_unique(names, str(path))
        with _reading(path, kind):
            return pd.read_parquet(path), rows
    text = _csv_text(path, suffixes)
    if text is not None:
        _check_delimiter(path, text, sep)

    def source() -> Any:
        return io.StringIO(text) if text is not None else path

    options = {"sep": sep if sep is not None else ",", "decimal": decimal}
    # The raw column names first: pandas renames a repeated CSV name 'A' to 'A.1'.
    with _reading(path, kind):
        names = pd.read_csv(source(), header=None, nrows=1, dtype=str, keep_default_na=False, **options).iloc[0].tolist()
    _check_unique(names, str(path))
    with _reading(path, kind):
        frame = pd.read_csv(source(), **options)
    if not isinstance(frame.index, pd.RangeIndex):  # pandas made surplus first cells an index
        raise DataError(
            f"{path}: rows have more cells than the {len(frame.columns)} names of the header line; name every column "
            "or remove the extra cells."
        )
    numbers = _line_numbers(text, len(frame)) if text is not None else None
    return frame, (replace(rows, numbers=numbers) if numbers is not None else rows)


@contextmanager
def _reading(path: Path, kind: str) -> Iterator[None]:
    """Turn whatever pandas, pyarrow or a decompressor raises on an unreadable file into a DataError."""
    try:
        yield
    except PermissionError:
        raise DataError(
            f"{path}: permission denied: this user may not read the file; change its permissions (chmod u+r) or "
            "copy it to a readable place."
        ) from None
    except IsADirectoryError:
        raise DataError(f"{path}: a folder, not a file; pass the path of a CSV/Parquet file.") from None
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


@dataclass(frozen=True)
class _DateOptions:
    """How to read dates and what to do with two rows on one day (see :func:`load_prices`)."""

    date_format: str | None = None
    dayfirst: bool | None = None
    duplicates: Duplicates = "error"


def _date_index(frame: pd.DataFrame, source: str, rows: _Rows, opts: _DateOptions) -> tuple[pd.DataFrame, _Rows]:
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
        dates = parse_dates(frame[col], source, where, rows.at, opts.date_format, opts.dayfirst)
        frame = frame.drop(columns=[col])
    missing = dates.isna()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        what = "the date is missing" if pd.isna(raw)[i] else f"cannot parse date {str(raw[i])!r}"
        fix = (
            f"write every date as date_format={opts.date_format!r} says" if opts.date_format is not None
            else "write dates as YYYY-MM-DD (or numbers YYYYMMDD)"
        )
        raise DataError(f"{source}: {where}, {rows.at(i)}: {what}; {fix}.")
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    frame = frame.set_axis(dates.rename("date"), axis=0)
    day = frame.index.normalize()
    if opts.duplicates == "last":  # keep the last row (in file order) of each calendar day
        keep = ~day.duplicated(keep="last")
        frame, rows, day = frame[keep], rows.keep(keep), day[keep]
    dup = day.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        j = int(np.flatnonzero(day == day[i])[0])
        stamps = frame.index[[j, i]]
        times = "" if stamps[0] == stamps[1] else f" at {stamps[0].time()} and {stamps[1].time()}"
        raise DataError(
            f"{source}: duplicate date {frame.index[i].date()} at {rows.at(i)} (the same day as {rows.at(j)}{times}); "
            "keep one row per date, or pass duplicates='last' to keep the last row of each day."
        )
    if not frame.index.is_monotonic_increasing:
        i = int(np.flatnonzero(np.diff(frame.index.asi8) < 0)[0]) + 1
        raise DataError(
            f"{source}: dates are not sorted: {frame.index[i].date()} at {rows.at(i)} comes after "
            f"{frame.index[i - 1].date()}; sort the rows by date."
        )
    return frame, rows


def _check_options(ffill_limit: int, min_rows: int, opts: _DateOptions = _DateOptions()) -> None:
    check_int("ffill_limit", ffill_limit, 0, " (the longest run of missing prices that is forward-filled)")
    check_int("min_rows", min_rows, 2, " (two prices make one return)")
    check_date_options(opts.date_format, opts.dayfirst)
    if opts.duplicates not in ("error", "last"):
        raise ConfigError(
            f"duplicates={opts.duplicates!r} must be 'error' (refuse two rows on one day) or 'last' (keep the last)."
        )


def validate_prices(
    frame: pd.DataFrame,
    source: str = "<DataFrame>",
    ffill_limit: int = 5,
    min_rows: int = 2,
    *,
    date_format: str | None = None,
    dayfirst: bool | None = None,
    duplicates: Duplicates = "error",
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
    date_format
        A strftime format every text date must match (e.g. ``"%d/%m/%Y"``); ``None``: ISO
        dates, ``YYYYMMDD`` numbers, or ``a/b/yyyy`` dates whose order the data decides.
    dayfirst
        Read ``a/b/yyyy`` dates day-first (``True``) or month-first (``False``). ``None``:
        day-first if a first field is above 12, month-first if a second one is, and a
        :class:`DataError` naming both readings when every field is at most 12 (never a guess).
    duplicates
        ``"error"`` (default): two rows on one calendar day (a repeated date, or two times of
        one day) are a :class:`DataError` naming both rows; ``"last"``: keep the last row of each
        day, in table order.

    Returns
    -------
    DataFrame of shape ``(dates, assets)``; ``attrs["filled"]`` maps each asset to the number
    of missing prices that were forward-filled.

    Raises
    ------
    DataError
        Missing, unparsable, duplicate (same calendar day) or unsorted dates; ambiguous or mixed
        day/month order; dates with different time-zone offsets; repeated column names; non-numeric, non-finite or non-positive prices; a gap longer than
        ``ffill_limit``; fewer than 2 assets; fewer than ``min_rows`` rows.
    ConfigError
        ``ffill_limit`` or ``min_rows`` not an integer in range; a bad ``date_format``,
        ``dayfirst`` or ``duplicates``, or both ``date_format`` and ``dayfirst``.
    """
    opts = _DateOptions(date_format, dayfirst, duplicates)
    _check_options(ffill_limit, min_rows, opts)
    return _validate(frame, source, POSITIONS, ffill_limit, min_rows, opts)


def _validate(
    frame: pd.DataFrame, source: str, rows: _Rows, ffill_limit: int, min_rows: int, opts: _DateOptions
) -> pd.DataFrame:
    _check_unique(frame.columns, source)
    frame, rows = _date_index(frame, source, rows, opts)
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


def load_prices(
    source: str | os.PathLike[str] = "sp500",
    ffill_limit: int = 5,
    min_rows: int = 2,
    *,
    date_format: str | None = None,
    dayfirst: bool | None = None,
    duplicates: Duplicates = "error",
    sep: str | None = None,
    decimal: str = ".",
) -> pd.DataFrame:
    """Load a validated wide price table.

    Parameters
    ----------
    source
        ``"sp500"`` for the bundled data set, or the path of a CSV (optionally gzipped) or
        Parquet file with a ``date`` column and one price column per asset (``~`` is expanded).
    ffill_limit, min_rows, date_format, dayfirst, duplicates
        See :func:`validate_prices`.
    sep
        The CSV delimiter; ``None``: a comma, and a header line without one but with a ``;``
        or a tab is a :class:`DataError` asking for ``sep=';'`` (or ``sep='\\t'``).
    decimal
        The CSV decimal mark (``","`` for prices written ``1,5``).

    Returns
    -------
    DataFrame of shape ``(dates, assets)``, float64 prices, ``DatetimeIndex`` named ``date``.

    Raises
    ------
    DataError
        A missing, empty, unreadable (permission denied) or non-UTF-8 file, content that does
        not match the name (gzip, Parquet or zip bytes in a ``.csv`` file), a semicolon- or
        tab-delimited file without ``sep``, or any problem of :func:`validate_prices`; rows of a
        CSV file are numbered by the file's line number (header = row 1, blank lines counted),
        rows of a Parquet file by 0-based position.
    ConfigError
        ``ffill_limit`` or ``min_rows`` not an integer in range.

    Examples
    --------
    >>> prices = load_prices("sp500")
    >>> prices.shape
    (8313, 20)
    """
    opts = _DateOptions(date_format, dayfirst, duplicates)
    _check_options(ffill_limit, min_rows, opts)
    if sep is not None and (not isinstance(sep, str) or sep == ""):
        raise ConfigError(f"sep={sep!r} must be a delimiter such as ',' or ';' (or None for a comma).")
    name = os.fspath(source)
    if name in BUNDLED:
        with resources.as_file(resources.files("gradfolio.data") / "bundled" / BUNDLED[name]) as path:
            frame, rows = pd.read_csv(path), CSV_ROWS
    else:
        path = Path(name).expanduser()
        name = str(path)
        frame, rows = _read_table(path, sep, decimal)
    return _validate(frame, name, rows, ffill_limit, min_rows, opts)


__all__ = ["BUNDLED", "Duplicates", "load_prices", "validate_prices", "check_int"]
