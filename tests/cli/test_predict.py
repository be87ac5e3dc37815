"""`gradfolio predict`: target weights, trades, turnover and cost from a run folder; one-line errors, nothing written on failure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gradfolio.allocation.strategy import load_strategy
from gradfolio.cli import app
from gradfolio.data import load_prices
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.backtest.run import run_backtest

ASSETS = ["AAPL", "JPM", "KO", "XOM", "MSFT"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("predict")
    config = BacktestConfig.model_validate({
        "seed": 5, "tracking": False, "benchmarks": ["inverse_volatility"],
        "data": {"start": "2019-01-01", "end": "2020-12-31", "lookback": 30, "horizon": 5, "assets": ASSETS},
        "split": {"val_start": "2020-01-01", "test_start": "2020-06-01"},
        "backtest": {"rebalance_every": 10, "cost_bps": 25},
        "network": {"name": "dense", "params": {"hidden": [8]}}, "train": {"epochs": 1},
    })
    folder, _ = run_backtest(config, root / "run")
    prices = load_prices("sp500").loc["2019-01-01":"2021-03-31"]
    csv = root / "prices.csv"
    prices[["XOM", "MSFT", "AAPL", "KO", "JPM"]].rename_axis("date").to_csv(csv)  # another column order
    return folder, csv, prices


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, ["predict", *args])


def test_predict_prints_the_strategys_weights(setup: tuple) -> None:
    folder, csv, prices = setup
    result = invoke("--run", str(folder), "--data", str(csv), "--as-of", "2021-02-14")
    assert result.exit_code == 0, result.output
    expected = load_strategy(folder).predict(prices[ASSETS], as_of="2021-02-14")
    assert expected.attrs["as_of"] == pd.Timestamp("2021-02-12")
    assert "net_dense: target weights decided on 2021-02-12" in result.output
    for ticker, weight in expected.items():
        assert f"{ticker}" in result.output and f"{weight:.4f}" in result.output
    # all cash before: turnover is the sum of the target weights, at the run's 25 bps
    assert f"turnover {expected.abs().sum():.4f}" in result.output and "at 25 bps" in result.output


def test_holdings_and_capital_give_trades_turnover_and_cost(setup: tuple, tmp_path: Path) -> None:
    folder, csv, prices = setup
    holdings = tmp_path / "current.csv"
    holdings.write_text("ticker,value\nKO,12000\nAAPL,30000\nCASH,8000\n")
    out = tmp_path / "out"
    result = invoke("--run", str(folder), "--data", str(csv), "--strategy", "inverse_volatility",
                    "--holdings", str(holdings), "--capital", "60000", "--cost-bps", "15", "--out", str(out))
    assert result.exit_code == 0, result.output
    target = load_strategy(folder, "inverse_volatility").predict(prices[ASSETS])
    current = pd.Series({"AAPL": 0.5, "JPM": 0.0, "KO": 0.2, "XOM": 0.0, "MSFT": 0.0})
    trade = target - current
    table = pd.read_csv(out / "predict.csv", index_col="ticker")
    assert list(table.index) == ASSETS
    np.testing.assert_allclose(table["target"].to_numpy(), target.to_numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(table["trade"].to_numpy(), trade.to_numpy(), rtol=0, atol=1e-16)
    np.testing.assert_allclose(table["trade_value"].to_numpy(), 60000 * trade.to_numpy(), rtol=1e-15)
    record = json.loads((out / "predict.json").read_text())
    turnover = float(trade.abs().sum())
    assert record["turnover"] == pytest.approx(turnover, rel=1e-14)
    assert record["cost"] == pytest.approx(0.0015 * turnover, rel=1e-14)
    assert record["cost_value"] == pytest.approx(60000 * 0.0015 * turnover, rel=1e-14)
    assert record["capital"] == 60000 and record["strategy"] == "inverse_volatility" and record["as_of"] == "2021-03-31"
    assert f"turnover {turnover:.4f}" in result.output and f"= {60000 * 0.0015 * turnover:,.2f} on capital 60,000.00" in result.output


@pytest.mark.parametrize(
    ("columns", "extra_args", "match"),
    [
        (["AAPL", "JPM", "KO", "XOM"], [], r"missing ticker\(s\) \['MSFT'\] that strategy 'net_dense' was trained on"),
        ([*ASSETS, "PG"], [], r"extra ticker\(s\) \['PG'\] .*--align"),
    ],
)
def test_asset_mismatch_is_one_line_and_writes_nothing(
    setup: tuple, tmp_path: Path, columns: list[str], extra_args: list[str], match: str
) -> None:
    _, _, prices = setup
    folder = setup[0]
    csv = tmp_path / "p.csv"
    prices[columns].rename_axis("date").to_csv(csv)
    out = tmp_path / "out"
    result = invoke("--run", str(folder), "--data", str(csv), "--out", str(out), *extra_args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(match, " ".join(result.output.split())), result.output
    assert not out.exists()


def test_align_drops_extra_tickers_with_a_warning(setup: tuple, tmp_path: Path) -> None:
    folder, _, prices = setup
    csv = tmp_path / "p.csv"
    prices[[*ASSETS, "PG", "HD"]].rename_axis("date").to_csv(csv)
    result = invoke("--run", str(folder), "--data", str(csv), "--align")
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and "dropped ticker(s) ['PG', 'HD']" in " ".join(result.output.split())
    expected = load_strategy(folder).predict(prices[ASSETS])
    assert all(f"{w:.4f}" in result.output for w in expected)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--holdings", "HOLD"], r"ticker\(s\) \['TSLA'\] are not among the strategy's assets"),
        (["--capital", "-5"], r"--capital -5: give the portfolio's wealth"),
        (["--strategy", "hrp"], r"no strategy 'hrp'; the run saved \['inverse_volatility', 'net_dense'\]"),
        (["--as-of", "1999-01-01"], r"no row on or before as_of=1999-01-01"),
        (["--as-of", "someday"], r"as_of='someday' is not a date"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(setup: tuple, tmp_path: Path, args: list[str], match: str) -> None:
    folder, csv, _ = setup
    holdings = tmp_path / "h.csv"
    holdings.write_text("ticker,weight\nTSLA,0.5\n")
    out = tmp_path / "out"
    args = [str(holdings) if a == "HOLD" else a for a in args]
    result = invoke("--run", str(folder), "--data", str(csv), "--out", str(out), *args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and re.search(match, " ".join(result.output.split())), result.output
    assert not out.exists()


def test_a_folder_without_strategies_is_named(tmp_path: Path, setup: tuple) -> None:
    _, csv, _ = setup
    result = invoke("--run", str(tmp_path), "--data", str(csv))
    assert result.exit_code == 2 and "neither a strategy bundle" in result.output


def test_out_is_a_predict_run_folder_and_a_foreign_folder_is_refused(setup: tuple, tmp_path: Path) -> None:
    folder, csv, _ = setup
    mine = tmp_path / "project"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own file")
    result = invoke("--run", str(folder), "--data", str(csv), "--out", str(mine))
    assert result.exit_code == 2 and "not created by gradfolio" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]  # untouched
    out = tmp_path / "daily"
    for _ in range(2):  # a second prediction into the same folder replaces the first
        result = invoke("--run", str(folder), "--data", str(csv), "--out", str(out))
        assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {"predict.csv", "predict.json", ".gradfolio-run"}
