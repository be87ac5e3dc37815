"""Sector exposure limits from a sector map file: ``sectors.csv`` (``ticker,sector``) -> :class:`Group` s.

A sector map is a two-column CSV with the header ``ticker,sector``, one asset a line::

    ticker,sector
    AAPL,tech
    MSFT,tech
    JPM,financials

:func:`load_sector_map` reads it (``{ticker: sector}``); :func:`sector_groups` turns bounds per
sector (``{"tech": (None, 0.3)}``) into one :class:`~gradfolio.solvers.constraints.Group` per
bounded sector, holding the tickers of that sector, for
:class:`~gradfolio.solvers.constraints.PortfolioConstraints` (resolved against the data's columns
by :meth:`~gradfolio.solvers.constraints.PortfolioConstraints.resolve`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence

from gradfolio.errors import ConfigError, DataError
from gradfolio.solvers.constraints import Group


def load_sector_map(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{ticker: sector}`` from a CSV file with the header ``ticker,sector``.

    Raises
    ------
    DataError
        The file is missing, its header is not ``ticker,sector``, a line has an empty ticker or
        sector, or a ticker appears twice (the file and line are named).
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise DataError(f"sector map {os.fspath(path)!r} cannot be read ({exc.strerror}); give the path of a ticker,sector CSV.") from None
    header = [c.strip().lower() for c in rows[0]] if rows else []
    if header != ["ticker", "sector"]:
        raise DataError(f"sector map {os.fspath(path)!r}: the header is {rows[0] if rows else 'missing'}; it must be 'ticker,sector'.")
    out: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        cells = [c.strip() for c in row]
        if len(cells) != 2 or not all(cells):
            raise DataError(f"sector map {os.fspath(path)!r}, line {line}: {row} is not 'ticker,sector'; fix the line.")
        ticker, sector = cells
        if ticker in out:
            raise DataError(f"sector map {os.fspath(path)!r}, line {line}: ticker {ticker!r} appears twice; keep one sector per ticker.")
        out[ticker] = sector
    return out


def sector_groups(
    sectors: Mapping[str, str],
    bounds: Mapping[str, tuple[float | None, float | None]],
    assets: Sequence[str] | None = None,
) -> tuple[Group, ...]:
    """One :class:`Group` per bounded sector, named after it, holding its tickers.

    Parameters
    ----------
    sectors
        ``{ticker: sector}`` (see :func:`load_sector_map`).
    bounds
        ``{sector: (lower, upper)}`` on the sector's net weight (``None`` for no bound).
    assets
        The data's columns: tickers of the map that are not among them are left out (a map may
        cover a larger universe). ``None`` keeps every ticker.

    Raises
    ------
    ConfigError
        A bounded sector is not in the map (named, with the map's sectors).
    DataError
        A bounded sector has none of its tickers among ``assets``.
    """
    known = sorted(set(sectors.values()))
    groups = []
    for sector, (lower, upper) in bounds.items():
        if sector not in known:
            raise ConfigError(f"sector bounds: sector {sector!r} is not in the sector map; its sectors are {known}.")
        members = [t for t, s in sectors.items() if s == sector and (assets is None or t in assets)]
        if not members:
            raise DataError(
                f"sector bounds: none of the tickers of sector {sector!r} is a column of the data "
                f"({list(assets or [])[:10]}...); drop its bounds or add its assets."
            )
        groups.append(Group(tuple(members), lower, upper, name=sector))
    return tuple(groups)


__all__ = ["load_sector_map", "sector_groups"]
