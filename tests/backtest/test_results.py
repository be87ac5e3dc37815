"""BacktestResult: metrics from gradfolio.risk, long-format weights, atomic save and load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from gradfolio import risk
from gradfolio.backtest import BacktestResult, walk_forward
from gradfolio.errors import DataError


@pytest.fixture()
def result() -> BacktestResult:
    rng = np.random.default_rng(1)
    R = pd.DataFrame(
        rng.normal(0.0004, 0.015, size=(300, 4)),
        index=pd.bdate_range("2019-01-01", periods=300, name="date"),
        columns=["AAA", "ZZZ", "MMM", "BBB"],
    )

    def ew(X: torch.Tensor) -> torch.Tensor:
        return torch.full((X.shape[0], 4), 0.25, dtype=X.dtype)

    def mom(X: torch.Tensor) -> torch.Tensor:
        return torch.softmax(30 * X[:, 0].sum(1), -1)

    return walk_forward({"ew": ew, "mom": mom}, R, 20, rebalance_every=5, cost=0.001, dtype=torch.float64)


def test_metrics_match_risk_summary(result: BacktestResult) -> None:
    table = result.metrics()
    for name in ("ew", "mom"):
        expected = risk.summary(result.returns[name].to_numpy())
        for key, value in expected.items():
            assert table.loc[name, key] == pytest.approx(value, rel=1e-12)
        years = len(result.returns) / 252
        assert table.loc[name, "annual_turnover"] == pytest.approx(result.turnover[name].sum() / years)
        assert table.loc[name, "total_cost"] == pytest.approx(0.001 * result.turnover[name].sum(), rel=1e-12)
        assert table.loc[name, "final_wealth"] == pytest.approx(result.wealth()[name].iloc[-1], rel=1e-12)
    dd = result.drawdowns()
    assert dd.max().to_numpy() == pytest.approx(table["max_drawdown"].to_numpy(), rel=1e-12)


def test_save_and_load_roundtrip(result: BacktestResult, tmp_path) -> None:
    out = result.save(tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.json", "returns.parquet", "turnover.parquet", "weights.parquet"
    ]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mom"]["sharpe_ratio"] == pytest.approx(result.metrics().loc["mom", "sharpe_ratio"])
    long = pd.read_parquet(out / "weights.parquet")
    assert list(long.columns) == ["date", "strategy", "asset", "weight_before", "weight_after"]
    assert len(long) == 2 * len(result.turnover) * 4
    back = BacktestResult.load(out)
    pd.testing.assert_frame_equal(back.returns, result.returns, check_freq=False)
    pd.testing.assert_frame_equal(back.costs, result.costs, check_freq=False)
    for name in ("ew", "mom"):
        pd.testing.assert_frame_equal(back.weights[name], result.weights[name], check_names=False, check_freq=False)
        pd.testing.assert_frame_equal(
            back.weights_before[name], result.weights_before[name], check_names=False, check_freq=False
        )
    pd.testing.assert_frame_equal(back.metrics(), result.metrics())


def test_load_missing_files(tmp_path) -> None:
    with pytest.raises(DataError, match="missing returns.parquet"):
        BacktestResult.load(tmp_path)


