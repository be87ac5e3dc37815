"""The run folder's statistics: stats.json equals gradfolio.stats.compare on the run's returns,
the report shows the CIs and p-values, the CLI table shows the difference to 1/N."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gradfolio.backtest import BacktestResult
from gradfolio.cli import app
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.backtest.evaluation import read_stats, stats_table
from gradfolio.experiments.backtest.run import run_backtest
from gradfolio.stats import compare

SMALL = {
    "seed": 3, "benchmarks": ["inverse_volatility", "equal_weight", "hrp"], "tracking": False,
    "data": {"start": "2019-01-01", "end": "2020-12-31", "lookback": 40, "horizon": 5,
             "assets": ["AAPL", "JPM", "KO", "XOM", "MSFT"]},
    "split": {"val_start": "2020-01-01", "test_start": "2020-06-01"},
    "backtest": {"rebalance_every": 10, "cost_bps": 20},
    "network": {"enabled": False},
    "stats": {"n_resamples": 300, "n_multiple_resamples": 200, "level": 0.9},
}


def test_stats_json_equals_compare_on_the_run_returns(tmp_path: Path) -> None:
    config = BacktestConfig.model_validate(SMALL)
    folder, _ = run_backtest(config, tmp_path / "run")
    returns = BacktestResult.load(folder).returns
    expected = compare(returns, benchmark="equal_weight", level=0.9, n_trials=3, n_resamples=300,
                       n_multiple_resamples=200, seed=3)
    stored = json.loads((folder / "stats.json").read_text())
    assert stored["benchmark"] == "equal_weight" and stored["n_trials"] == 3 and stored["level"] == 0.9
    for name in ("inverse_volatility", "hrp"):
        for col in ("sharpe", "sharpe_lower", "sharpe_upper", "diff", "diff_lower", "diff_upper", "diff_pvalue",
                    "psr", "dsr"):
            assert stored["strategies"][name][col] == pytest.approx(float(expected.loc[name, col]), rel=1e-12), col
    assert stored["strategies"]["equal_weight"]["diff"] is None
    # the Sharpe is the annualized sample Sharpe of the net returns; the 90% CI brackets it
    r = returns["hrp"].to_numpy()
    assert stored["strategies"]["hrp"]["sharpe"] == pytest.approx(np.sqrt(252) * r.mean() / r.std(ddof=1), rel=1e-9)
    table = read_stats(folder)
    assert table.loc["hrp", "diff_pvalue"] == pytest.approx(float(expected.loc["hrp", "diff_pvalue"]))
    md = (folder / "stats.md").read_text()
    assert "DSR with 3 trials" in md and "90% intervals" in md
    html = (folder / "report.html").read_text()
    assert "id='stats'" in html and "sharpe-ci" in html and "Is it better than 1/N?" in html
    assert f"{expected.loc['hrp', 'diff_pvalue']:.3f}" in html
    assert (folder / "sharpe_ci.png").is_file()


def test_no_stats_without_the_benchmark(tmp_path: Path) -> None:
    config = BacktestConfig.model_validate({**SMALL, "benchmarks": ["inverse_volatility", "hrp"]})
    assert stats_table(pd.DataFrame({"a": [0.01, 0.02], "b": [0.0, 0.01]}), config) is None
    folder, _ = run_backtest(config, tmp_path / "run")
    assert not (folder / "stats.json").exists() and "id='stats'" not in (folder / "report.html").read_text()
    off = BacktestConfig.model_validate({**SMALL, "stats": {"enabled": False}})
    assert stats_table(pd.DataFrame({"equal_weight": [0.01, 0.02], "b": [0.0, 0.01]}), off) is None


def test_cli_table_shows_the_difference_to_one_over_n(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from gradfolio.cli.app import console

    monkeypatch.setattr(console, "_width", 250)  # the whole table on one line per strategy
    cfg = tmp_path / "small.yaml"
    cfg.write_text(yaml.safe_dump(SMALL))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["backtest", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    stats = read_stats(out)
    row = stats.loc["hrp"]
    assert "vs 1/N [90% CI] p" in result.output
    assert f"{row['diff']:+.3f} [{row['diff_lower']:+.3f}, {row['diff_upper']:+.3f}] p={row['diff_pvalue']:.2f}" in result.output
