"""Shared data for the classical-portfolio tests: windows of the bundled S&P 500 returns."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from gradfolio.data import load_prices, to_returns

#: Window ends (row positions in the return table) used for the batched tests.
ENDS = (2000, 4500, 6000, 8312)


@pytest.fixture(scope="session")
def sp500_returns() -> pd.DataFrame:
    """Simple daily returns of the bundled 20 S&P 500 stocks, shape (8312, 20)."""
    return to_returns(load_prices("sp500"))


@pytest.fixture(scope="session")
def windows(sp500_returns: pd.DataFrame):
    """``make(lookback, ends=ENDS)`` -> (X (B, 1, L, N) float64 tensor, list of B DataFrames)."""

    def make(lookback: int = 252, ends: tuple[int, ...] = ENDS) -> tuple[torch.Tensor, list[pd.DataFrame]]:
        frames = [sp500_returns.iloc[end - lookback : end] for end in ends]
        X = torch.stack([torch.tensor(f.to_numpy()) for f in frames])[:, None]
        return X, frames

    return make


#: The 12 Fama-French industry portfolios of ``linearmodels.datasets.french`` (monthly simple returns, fractions).
FF_INDUSTRIES = ("NoDur", "Durbl", "Manuf", "Enrgy", "Chems", "BusEq", "Telcm", "Utils", "Shops", "Hlth", "Money", "Other")


@pytest.fixture(scope="session")
def ff_returns() -> pd.DataFrame:
    """Monthly simple returns (fractions) of the 12 Fama-French industries, shape (819, 12)."""
    from linearmodels.datasets import french

    return french.load()[list(FF_INDUSTRIES)]


@pytest.fixture(scope="session")
def ff_windows(ff_returns: pd.DataFrame):
    """``make(lookback, ends=(200, 500, 819))`` -> (X (B, 1, L, 12) float64, list of B DataFrames)."""

    def make(lookback: int = 120, ends: tuple[int, ...] = (200, 500, 819)) -> tuple[torch.Tensor, list[pd.DataFrame]]:
        frames = [ff_returns.iloc[end - lookback : end] for end in ends]
        X = torch.stack([torch.tensor(f.to_numpy()) for f in frames])[:, None]
        return X, frames

    return make


@pytest.fixture(params=["sp500", "ff"])
def both_windows(request: pytest.FixtureRequest, windows, ff_windows):
    """The bundled S&P 500 windows (L=252) and the Fama-French industry windows (L=120)."""
    return windows(252) if request.param == "sp500" else ff_windows(120)
