"""The differential Sharpe ratio: the first-order term of the moving Sharpe ratio, and its recursion."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gradfolio.allocation.rl import PortfolioEnv, differential_sharpe


def test_is_the_derivative_of_the_moving_sharpe_ratio() -> None:
    A = torch.tensor([0.002, -0.001, 0.0005], dtype=torch.float64)
    B = torch.tensor([0.0003, 0.0002, 0.00011], dtype=torch.float64)
    R = torch.tensor([0.013, -0.021, 0.004], dtype=torch.float64)
    D, A1, B1 = differential_sharpe(R, A, B, 0.03)

    def sharpe(eta: float) -> torch.Tensor:
        a, b = A + eta * (R - A), B + eta * (R * R - B)
        return a / (b - a * a).sqrt()

    h = 1e-6
    torch.testing.assert_close(D, (sharpe(h) - sharpe(-h)) / (2 * h), rtol=1e-7, atol=0)
    torch.testing.assert_close(A1, A + 0.03 * (R - A), rtol=0, atol=0)
    torch.testing.assert_close(B1, B + 0.03 * (R * R - B), rtol=0, atol=0)
    D0, _, _ = differential_sharpe(R, torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 0.03)
    assert torch.equal(D0, torch.zeros(3, dtype=torch.float64))  # undefined at the start: 0


def test_environment_reward_follows_the_recursion(market: pd.DataFrame) -> None:
    eta = 0.13
    env = PortfolioEnv(market, 5, rebalance_every=2, start="first", episode_length=12, cost=[0.002, 0.0, 0.01],
                       reward="differential_sharpe", eta=eta)
    env.reset()
    gen = torch.Generator().manual_seed(0)
    A = Bm = 0.0
    for _ in range(12):
        _, reward, _, info = env.step(torch.randn(1, 3, generator=gen, dtype=torch.float64))
        R = math.prod(1.0 + float(x) for x in info["net"][0]) - 1.0  # the period's net return
        var = Bm - A * A
        expected = (Bm * (R - A) - 0.5 * A * (R * R - Bm)) / var**1.5 if var > 1e-12 else 0.0
        assert float(reward[0]) == pytest.approx(expected, rel=1e-9, abs=1e-12)
        A, Bm = A + eta * (R - A), Bm + eta * (R * R - Bm)
    assert np.isfinite(float(reward[0])) and float(reward[0]) != 0.0
