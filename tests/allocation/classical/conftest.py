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
