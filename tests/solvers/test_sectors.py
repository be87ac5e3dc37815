"""Sector map files and per-sector bounds -> Groups."""

from __future__ import annotations

import numpy as np
import pytest

from gradfolio.errors import ConfigError, DataError
from gradfolio.solvers import Group, PortfolioConstraints, load_sector_map, sector_groups

ASSETS = ["AAPL", "MSFT", "JPM", "BAC", "XOM"]


@pytest.fixture
def sector_file(tmp_path):
    path = tmp_path / "sectors.csv"
    path.write_text("ticker,sector\nAAPL,tech\nMSFT,tech\nJPM,financials\nBAC,financials\nXOM,energy\nNVDA,tech\n\n")
    return path


def test_load_and_group(sector_file):
    sectors = load_sector_map(sector_file)
    assert sectors == {"AAPL": "tech", "MSFT": "tech", "JPM": "financials", "BAC": "financials", "XOM": "energy",
                       "NVDA": "tech"}
    groups = sector_groups(sectors, {"tech": (None, 0.3), "financials": (0.1, 0.45)}, ASSETS)
    assert groups == (Group(("AAPL", "MSFT"), None, 0.3, "tech"), Group(("JPM", "BAC"), 0.1, 0.45, "financials"))
    spec = PortfolioConstraints(long_only=True, groups=groups).resolve(ASSETS)
    by_index = PortfolioConstraints(long_only=True, groups=[Group([0, 1], None, 0.3), Group([2, 3], 0.1, 0.45)])
    np.testing.assert_array_equal(spec.compile(5).G, by_index.compile(5).G)
    np.testing.assert_array_equal(spec.compile(5).h0, by_index.compile(5).h0)
    assert sector_groups(sectors, {"tech": (0.0, 0.5)})[0].assets == ("AAPL", "MSFT", "NVDA")  # no data: all tickers


def test_bad_files_and_bounds(tmp_path, sector_file):
    with pytest.raises(DataError, match="cannot be read"):
        load_sector_map(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,industry\nAAPL,tech\n")
    with pytest.raises(DataError, match="it must be 'ticker,sector'"):
        load_sector_map(bad)
    bad.write_text("ticker,sector\nAAPL,tech\nAAPL,energy\n")
    with pytest.raises(DataError, match=r"line 3: ticker 'AAPL' appears twice"):
        load_sector_map(bad)
    bad.write_text("ticker,sector\nAAPL,\n")
    with pytest.raises(DataError, match="line 2"):
        load_sector_map(bad)
    sectors = load_sector_map(sector_file)
    with pytest.raises(ConfigError, match=r"sector 'utilities' is not in the sector map; its sectors are \['energy'"):
        sector_groups(sectors, {"utilities": (None, 0.2)}, ASSETS)
    with pytest.raises(DataError, match="none of the tickers of sector 'energy'"):
        sector_groups(sectors, {"energy": (None, 0.2)}, ["AAPL", "MSFT"])
