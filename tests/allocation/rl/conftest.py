"""Fixtures of the reinforcement-learning allocation tests: small seeded markets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def _market(T: int, N: int, seed: int, drift0: float = 0.0, scale: float = 0.015) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0005, scale, (T, N))
    r[:, 0] += drift0
    return pd.DataFrame(r, index=pd.bdate_range("2020-01-01", periods=T), columns=[f"A{i}" for i in range(N)])


@pytest.fixture
def market() -> pd.DataFrame:
    """80 days of 3 assets' simple returns (seeded)."""
    return _market(80, 3, 7)


@pytest.fixture
def planted() -> pd.DataFrame:
    """300 days of 4 assets, the first one drifting up 0.6% a day (daily volatility 1%): the best portfolio holds it."""
    return _market(300, 4, 0, drift0=0.006, scale=0.01)
