"""Read a column of dates without guessing: ``dd/mm/yyyy`` versus ``mm/dd/yyyy`` is decided or refused.

A date such as ``03/04/2020`` reads as 3 April (day first) or 4 March (month first). When a
column's numeric dates ``a/b/yyyy`` (also ``a.b.yyyy``, ``a-b-yyyy``) have a first field above
12 somewhere, they are day-first; a second field above 12 makes them month-first; when every
field is at most 12 the column is ambiguous and :func:`parse_dates` raises a
:class:`~gradfolio.errors.DataError` naming both readings unless ``dayfirst`` or
``date_format`` says which it is. ISO dates (``2020-04-03``) and ``YYYYMMDD`` numbers are never
ambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from gradfolio.errors import ConfigError, DataError

#: ``a/b/yyyy`` with one separator (``/``, ``.`` or ``-``) used twice, optionally followed by a time.
_NUMERIC_DMY = re.compile(r"^\s*(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})(?:[ T].*)?$")


def check_date_options(date_format: str | None, dayfirst: bool | None) -> None:
    """Raise ConfigError unless ``date_format`` is ``None`` or a strftime string and ``dayfirst`` a bool or ``None``."""
    if date_format is not None and (not isinstance(date_format, str) or "%" not in date_format):
        raise ConfigError(
            f"date_format={date_format!r} must be a strftime format such as '%d/%m/%Y' (or None to detect it)."
        )
    if dayfirst is not None and not isinstance(dayfirst, bool):
        raise ConfigError(f"dayfirst={dayfirst!r} must be True, False or None.")
    if date_format is not None and dayfirst is not None:
        raise ConfigError(
            f"date_format={date_format!r} and dayfirst={dayfirst!r} both say how to read dates; pass only one."
        )


def parse_dates(
    raw: pd.Series,
    source: str,
    where: str,
    at: Callable[[int], str],
    date_format: str | None = None,
    dayfirst: bool | None = None,
) -> pd.DatetimeIndex:
    """Dates of a column; unparsable entries are ``NaT`` (the caller names them).

    Parameters
    ----------
    raw
        The column, shape ``(rows,)``: text, datetimes or ``YYYYMMDD`` numbers.
    source, where
        The file (or frame) and the column, for messages.
    at
        Names row ``i`` (0-based position) as the user sees it, e.g. ``"row 3"``.
    date_format
        A strftime format every date must match exactly (``None``: detect).
    dayfirst
        Read numeric ``a/b/yyyy`` dates day-first (``True``) or month-first (``False``);
        ``None``: decide from the data, and refuse when every field is at most 12.

    Returns
    -------
    DatetimeIndex of shape ``(rows,)``.

    Raises
    ------
    DataError
        Ambiguous day/month order, day-first and month-first dates mixed in one column, or
        different time-zone offsets.
    """
    if pd.api.types.is_datetime64_any_dtype(raw):
        return pd.DatetimeIndex(raw)
    numeric = pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)
    text = raw.astype(str).str.removesuffix(".0") if numeric else raw.astype(str)
    if date_format is not None:
        return pd.DatetimeIndex(pd.to_datetime(text, format=date_format, errors="coerce"))
    if numeric:
        return pd.DatetimeIndex(pd.to_datetime(text, format="%Y%m%d", errors="coerce"))
    first_is_day = _day_first(raw, text, source, where, at, dayfirst)
    try:
        dates = pd.DatetimeIndex(pd.to_datetime(text, format="mixed", dayfirst=bool(first_is_day), errors="coerce"))
    except ValueError:  # pandas refuses to mix time-zone offsets (or naive and zoned dates) in one column
        first, i = _zone_change(text)
        raise DataError(
            f"{source}: {where}, {at(i)}: date {text.iloc[i]!r} has another time-zone offset than "
            f"{text.iloc[first]!r} ({at(first)}); write every date in one time zone, or as YYYY-MM-DD."
        ) from None
    if first_is_day is not None:  # the parser may swap day and month of a single date: such a date is unparsable
        parts = text.str.extract(_NUMERIC_DMY)
        matched = parts[0].notna().to_numpy()
        a, b = (pd.to_numeric(parts[k]).to_numpy() for k in (0, 2))
        day, month = (a, b) if first_is_day else (b, a)
        wrong = matched & ~((dates.day.to_numpy() == day) & (dates.month.to_numpy() == month))
        dates = dates.where(~wrong, pd.NaT)
    return pd.DatetimeIndex(dates)


def _day_first(
    raw: pd.Series, text: pd.Series, source: str, where: str, at: Callable[[int], str], dayfirst: bool | None
) -> bool | None:
    """Whether numeric ``a/b/yyyy`` dates are day-first; ``None`` when the column has none."""
    parts = text.where(raw.notna(), "").str.extract(_NUMERIC_DMY)
    rows = np.flatnonzero(parts[0].notna().to_numpy())
    if len(rows) == 0:
        return None
    if dayfirst is not None:
        return dayfirst
    a = pd.to_numeric(parts[0]).to_numpy()[rows]
    b = pd.to_numeric(parts[2]).to_numpy()[rows]
    sep = parts[1].iloc[rows[0]]
    day_over, month_over = rows[a > 12], rows[b > 12]
    if len(day_over) and len(month_over):
        i, j = int(day_over[0]), int(month_over[0])
        raise DataError(
            f"{source}: {where}: {text.iloc[i]!r} ({at(i)}) is day-first but {text.iloc[j]!r} ({at(j)}) is "
            "month-first; write every date the same way, preferably as YYYY-MM-DD."
        )
    if len(day_over) or len(month_over):
        return bool(len(day_over))
    readings = []
    for first_is_day in (True, False):
        dates = pd.to_datetime(text.iloc[rows], format="mixed", dayfirst=first_is_day, errors="coerce").dropna()
        span = f"{dates.min().date()} .. {dates.max().date()}" if len(dates) else "nothing"
        readings.append(span)
    i = int(rows[0])
    fmt_day, fmt_month = f"%d{sep}%m{sep}%Y", f"%m{sep}%d{sep}%Y"
    raise DataError(
        f"{source}: {where}: dates such as {text.iloc[i]!r} ({at(i)}) are ambiguous: no day or month field is above "
        f"12, so they read day-first as {readings[0]} or month-first as {readings[1]}; pass dayfirst=True "
        f"(or date_format={fmt_day!r}) for day-first dates, dayfirst=False (or date_format={fmt_month!r}) for "
        "month-first dates."
    )


def _zone_change(text: pd.Series) -> tuple[int, int]:
    """Positions of the first parsable date and of the first date with another time-zone offset."""
    stamps = [pd.to_datetime(v, format="mixed", errors="coerce") for v in text]
    valid = [i for i, ts in enumerate(stamps) if ts is not pd.NaT]
    first = valid[0] if valid else 0
    return first, next((i for i in valid if stamps[i].utcoffset() != stamps[first].utcoffset()), first)


__all__ = ["parse_dates", "check_date_options"]
