"""Rebalancing schedules and path-dependent costs in walk_forward: two-asset hand computations."""

from __future__ import annotations

from math import sqrt

import numpy as np
import pandas as pd
import pytest
import torch

from gradfolio.backtest import (
    BorrowCost,
    CalendarSchedule,
    CompositeCost,
    FixedFee,
    ProportionalCost,
    SpreadImpactCost,
    ThresholdSchedule,
    walk_forward,
)
from gradfolio.errors import ConfigError, DataError

# Row 0 is the lookback day; rows 1..4 the holding days of a daily-rebalanced backtest.
ROWS = [[0.01, 0.03], [0.10, -0.05], [0.02, 0.0], [0.15, -0.05], [-0.04, 0.02]]


def table(rows: list[list[float]] = ROWS, start: str = "2021-01-04") -> pd.DataFrame:
    index = pd.bdate_range(start, periods=len(rows))
    return pd.DataFrame(rows, index=index, columns=["A", "B"])


def constant(w: list[float]):
    def strategy(X: torch.Tensor) -> torch.Tensor:
        return torch.tensor(w, dtype=X.dtype).expand(X.shape[0], 2).clone()

    return strategy


def _drift(w: np.ndarray, r: list[float]) -> tuple[np.ndarray, float]:
    grown = w * (1 + np.array(r))
    value = 1 - w.sum() + grown.sum()
    return grown / value, value - 1


def _band_reference(target: np.ndarray, band: float | np.ndarray, to: str, rate: float) -> tuple[list[float], list[float], list[np.ndarray]]:
    """Day-by-day NumPy loop: trade when max |w - target| > band, to the target or the band edge."""
    w = np.zeros(2)
    turnover, nets, held = [], [], []
    for r in ROWS[1:]:
        if np.any(np.abs(w - target) > band):
            after = target if to == "target" else target + np.clip(w - target, -band, band)
        else:
            after = w
        traded = np.abs(after - w).sum()
        w, gross = _drift(after, r)
        turnover.append(traded)
        nets.append((1 - rate * traded) * (1 + gross) - 1)
        held.append(after)
    return turnover, nets, held


def test_threshold_band_to_target_by_hand() -> None:
    """Target (0.5, 0.5), band 0.05, 10 bps. Day 1: w -> (0.55, 0.475)/1.025 = (0.536585, 0.463415),
    inside the band; day 2: (0.541506, 0.458494), inside; day 3: (0.588426, 0.411574), outside
    (0.0884 > 0.05): trade back to (0.5, 0.5), turnover 2 * 0.088426."""
    res = walk_forward({"s": constant([0.5, 0.5])}, table(), 1, cost=0.001, schedule=ThresholdSchedule(0.05), dtype=torch.float64)
    w1, g1 = _drift(np.array([0.5, 0.5]), ROWS[1])
    w2, g2 = _drift(w1, ROWS[2])
    w3, g3 = _drift(w2, ROWS[3])
    _, g4 = _drift(np.array([0.5, 0.5]), ROWS[4])
    np.testing.assert_allclose(w1, [0.55 / 1.025, 0.475 / 1.025], rtol=0, atol=1e-15)
    np.testing.assert_allclose([w2[0], w3[0]], [0.541506, 0.588426], rtol=0, atol=1e-6)
    turnover = [1.0, 0.0, 0.0, 2 * (w3[0] - 0.5)]
    nets = [(1 - 0.001) * (1 + g1) - 1, g2, g3, (1 - 0.001 * turnover[3]) * (1 + g4) - 1]
    np.testing.assert_allclose(res.turnover["s"].to_numpy(), turnover, rtol=0, atol=1e-15)
    np.testing.assert_allclose(res.returns["s"].to_numpy(), nets, rtol=0, atol=1e-15)
    np.testing.assert_allclose(res.weights["s"].iloc[1].to_numpy(), w1, rtol=0, atol=1e-15)  # held, not traded
    ref = _band_reference(np.array([0.5, 0.5]), 0.05, "target", 0.001)
    np.testing.assert_allclose(res.turnover["s"].to_numpy(), ref[0], rtol=0, atol=1e-15)


def test_threshold_band_to_edge() -> None:
    """From cash the first trade buys only to the band edge (0.45, 0.45); later trades move only
    the assets outside their band, each to its edge (NumPy day-by-day loop as the reference)."""
    res = walk_forward({"s": constant([0.5, 0.5])}, table(), 1, cost=0.001, schedule=ThresholdSchedule(0.05, to="edge"), dtype=torch.float64)
    np.testing.assert_allclose(res.weights["s"].iloc[0].to_numpy(), [0.45, 0.45], rtol=0, atol=1e-15)
    # day 1 from (0.45, 0.45) and 0.1 cash: (0.495, 0.4275) / 1.0225 = (0.484108, 0.418093); B is
    # 0.0819 below target: B bought to 0.45, A (inside its band) kept
    w1, _ = _drift(np.array([0.45, 0.45]), ROWS[1])
    np.testing.assert_allclose(res.weights["s"].iloc[1].to_numpy(), [w1[0], 0.45], rtol=0, atol=1e-15)
    turnover, nets, held = _band_reference(np.array([0.5, 0.5]), 0.05, "edge", 0.001)
    np.testing.assert_allclose(res.turnover["s"].to_numpy(), turnover, rtol=0, atol=1e-15)
    np.testing.assert_allclose(res.returns["s"].to_numpy(), nets, rtol=0, atol=1e-15)
    np.testing.assert_allclose(res.weights["s"].to_numpy(), np.array(held), rtol=0, atol=1e-15)


def test_per_asset_band() -> None:
    """Band (0.01, 0.2), to the edge: from cash A is bought to 0.49 and B only to 0.3; on day 1
    (0.21 in cash) A drifts to 0.539/1.034 = 0.521277 and B to 0.285/1.034 = 0.275629, both outside
    their bands: A sold to 0.51, B bought to 0.3."""
    band = np.array([0.01, 0.2])
    res = walk_forward({"s": constant([0.5, 0.5])}, table(), 1, schedule=ThresholdSchedule([0.01, 0.2], to="edge"), dtype=torch.float64)
    np.testing.assert_allclose(res.weights["s"].iloc[0].to_numpy(), [0.49, 0.3], rtol=0, atol=1e-15)
    w1, _ = _drift(np.array([0.49, 0.3]), ROWS[1])
    np.testing.assert_allclose(w1, [0.539 / 1.034, 0.285 / 1.034], rtol=0, atol=1e-15)
    np.testing.assert_allclose(res.weights["s"].iloc[1].to_numpy(), [0.51, 0.3], rtol=0, atol=1e-15)
    assert abs(res.turnover["s"].iloc[1] - (w1[0] - 0.51 + 0.3 - w1[1])) < 1e-15
    turnover, nets, held = _band_reference(np.array([0.5, 0.5]), band, "edge", 0.0)
    np.testing.assert_allclose(res.turnover["s"].to_numpy(), turnover, rtol=0, atol=1e-15)
    np.testing.assert_allclose(res.returns["s"].to_numpy(), nets, rtol=0, atol=1e-15)


def test_calendar_schedules_trade_only_on_their_dates() -> None:
    rng = np.random.default_rng(4)
    rows = (0.01 * rng.standard_normal((70, 2)) + [0.001, -0.0005]).tolist()
    returns = table(rows, start="2021-01-25")  # business days into April
    calls: list[int] = []

    def strategy(X: torch.Tensor) -> torch.Tensor:
        calls.append(X.shape[0])
        return torch.tensor([0.7, 0.3], dtype=X.dtype).expand(X.shape[0], 2).clone()

    res = walk_forward({"s": strategy}, returns, 1, cost=0.002, schedule=CalendarSchedule(freq="M"), dtype=torch.float64)
    dates = res.turnover.index
    first_of_month = [0] + [i for i in range(1, len(dates)) if dates[i].month != dates[i - 1].month]
    assert sum(calls) == len(first_of_month) == 4  # the strategy is evaluated only there (one batched call)
    traded = np.flatnonzero(res.turnover["s"].to_numpy() > 0)
    np.testing.assert_array_equal(traded, first_of_month)
    # between trades: buy and hold, so the wealth is sum_i w_i prod(1 + R_i) over each month
    R = returns.to_numpy()[1:]
    wealth = 1.0
    for a, b in zip(first_of_month, [*first_of_month[1:], len(R)], strict=True):
        w_before = np.zeros(2) if a == 0 else w_drift
        paid = 0.002 * np.abs(np.array([0.7, 0.3]) - w_before).sum()
        growth = np.prod(1 + R[a:b], axis=0)
        month = 0.7 * growth[0] + 0.3 * growth[1]
        wealth *= (1 - paid) * month
        w_drift = np.array([0.7, 0.3]) * growth / month
    assert abs(res.wealth()["s"].iloc[-1] - wealth) < 1e-13
    # weekly: trades on the first business day of every week (Mondays here: no holidays)
    weekly = walk_forward({"s": strategy}, returns, 1, schedule=CalendarSchedule(freq="W"))
    assert set(weekly.turnover.index[weekly.turnover["s"] > 0].day_of_week) == {0}
    quarterly = walk_forward({"s": strategy}, returns, 1, schedule=CalendarSchedule(freq="Q"))
    assert list(quarterly.turnover.index[quarterly.turnover["s"] > 0].strftime("%m-%d")) == ["01-25", "04-01"]


def test_calendar_every_equals_rebalance_every_and_default_path() -> None:
    rng = np.random.default_rng(8)
    returns = table((0.01 * rng.standard_normal((40, 2))).tolist())
    s = {"s": constant([0.8, 0.35])}  # levered: borrows cash
    batched = walk_forward(s, returns, 1, rebalance_every=3, cost=0.0015)
    path = walk_forward(s, returns, 1, rebalance_every=1, cost=0.0015, schedule=CalendarSchedule(every=3))
    n = len(batched.returns)
    np.testing.assert_allclose(path.returns["s"].to_numpy()[:n], batched.returns["s"].to_numpy(), rtol=0, atol=1e-15)
    every_day = walk_forward(s, returns, 1, cost=ProportionalCost([0.001, 0.004]))
    same = walk_forward(s, returns, 1, cost=ProportionalCost([0.001, 0.004]), schedule=CalendarSchedule())
    np.testing.assert_allclose(same.returns.to_numpy(), every_day.returns.to_numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(same.costs.to_numpy(), every_day.costs.to_numpy(), rtol=0, atol=1e-15)


def test_borrow_charged_daily_by_hand() -> None:
    """Weights (1.3, -0.45) (0.15 in cash), rebalanced every 2 days, borrow 5% a year on B."""
    res = walk_forward({"s": constant([1.3, -0.45])}, table(), 1, rebalance_every=2, cost=BorrowCost(0.05), dtype=torch.float64)
    w = np.array([1.3, -0.45])
    nets = []
    for p in range(2):
        day = w
        for j in range(2):
            new, gross = _drift(day, ROWS[1 + 2 * p + j])
            borrow = 0.05 / 252 * max(-day[1], 0.0)
            nets.append(gross - borrow)
            day = new
    np.testing.assert_allclose(res.returns["s"].to_numpy(), nets, rtol=0, atol=1e-15)
    np.testing.assert_allclose(res.gross_returns["s"].to_numpy() - res.returns["s"].to_numpy(), res.costs["s"].to_numpy(), rtol=0, atol=1e-15)


def test_fixed_fee_and_impact_track_wealth_by_hand() -> None:
    """Fee 7 per asset traded on 10,000 of wealth; spread + impact with volume data."""
    fee = FixedFee([7.0, 3.0])
    res = walk_forward({"s": constant([0.6, 0.4])}, table(), 1, cost=fee, initial_wealth=1e4, dtype=torch.float64)
    W = 1e4
    w = np.zeros(2)
    for p in range(4):
        paid = 10.0 / W  # both assets traded every day (the weights drift)
        w_new, gross = _drift(np.array([0.6, 0.4]), ROWS[1 + p])
        net = (1 - paid) * (1 + gross) - 1
        assert abs(res.returns["s"].iloc[p] - net) < 1e-15 and abs(res.costs["s"].iloc[p] - paid) < 1e-18
        W *= 1 + net
        w = w_new
    # square-root impact: lookback 3 rows, volume 2e5 and 5e4 per day, wealth 1e5
    rows = [[0.01, 0.03], [-0.02, 0.01], [0.015, -0.04], *ROWS[1:]]
    returns = table(rows)
    volume = pd.DataFrame({"A": 2e5, "B": 5e4}, index=returns.index)
    impact = SpreadImpactCost(spread=[0.002, 0.006], impact=0.9)
    res = walk_forward({"s": constant([0.6, 0.4])}, returns, 3, cost=impact, volume=volume, initial_wealth=1e5, dtype=torch.float64)
    sigma = np.std(np.array(rows[:3]), axis=0, ddof=1)
    first = 0.002 / 2 * 0.6 + 0.006 / 2 * 0.4
    first += 0.9 * sigma[0] * sqrt(0.6 * 1e5 / 2e5) * 0.6 + 0.9 * sigma[1] * sqrt(0.4 * 1e5 / 5e4) * 0.4
    assert abs(res.costs["s"].iloc[0] - first) < 1e-15
    composite = walk_forward(
        {"s": constant([0.6, 0.4])}, returns, 3, cost=CompositeCost(impact, ProportionalCost(0.0)), volume=volume, initial_wealth=1e5,
        dtype=torch.float64,
    )
    np.testing.assert_allclose(composite.returns.to_numpy(), res.returns.to_numpy(), rtol=0, atol=1e-15)
    with pytest.raises(DataError, match="volume: the cost model needs"):
        walk_forward({"s": constant([0.6, 0.4])}, returns, 3, cost=impact, initial_wealth=1e5)
    with pytest.raises(DataError, match="volume: no value for"):
        walk_forward({"s": constant([0.6, 0.4])}, returns, 3, cost=impact, volume=volume.iloc[:-1], initial_wealth=1e5)
    with pytest.raises(ConfigError, match="initial_wealth"):
        walk_forward({"s": constant([0.6, 0.4])}, returns, 3, cost=fee)


def test_schedule_errors() -> None:
    with pytest.raises(ConfigError, match="freq"):
        CalendarSchedule(freq="Y")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not both"):
        CalendarSchedule(every=2, freq="M")
    with pytest.raises(ConfigError, match="every"):
        CalendarSchedule(every=0)
    with pytest.raises(ConfigError, match="band"):
        ThresholdSchedule(-0.1)
    with pytest.raises(ConfigError, match="to="):
        ThresholdSchedule(0.1, to="middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="3 per-asset widths for 2 assets"):
        walk_forward({"s": constant([0.5, 0.5])}, table(), 1, schedule=ThresholdSchedule([0.1, 0.1, 0.1]))
