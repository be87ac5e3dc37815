"""Several networks / losses in one run (`networks: [...]`, `gradfolio experiment`): each network is
trained and walked forward exactly as it would be alone, all are compared and cross-validated together."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from gradfolio.backtest import BacktestResult
from gradfolio.cli import app
from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.backtest.run import run_backtest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DENSE = {"name": "dense", "loss": "sharpe", "params": {"hidden": [8]}}
CVAR = {"label": "dense_cvar", "name": "dense", "loss": "cvar", "params": {"hidden": [6]}}
CFG = {
    "seed": 4, "benchmarks": ["equal_weight", "inverse_volatility"], "tracking": False,
    "data": {"start": "2018-01-01", "end": "2020-12-31", "lookback": 20, "horizon": 5, "step": 5,
             "assets": ["AAPL", "JPM", "KO", "XOM", "MSFT"]},
    "split": {"val_start": "2020-01-01", "test_start": "2020-06-01"},
    "backtest": {"rebalance_every": 10, "cost_bps": 20},
    "train": {"epochs": 2, "patience": 2},
    "stats": {"n_resamples": 200, "n_multiple_resamples": 100},
}


def test_each_network_is_trained_as_alone(tmp_path: Path) -> None:
    config = BacktestConfig.model_validate({**CFG, "networks": [DENSE, CVAR]})
    folder, result = run_backtest(config, tmp_path / "both")
    assert result.strategies == ["net_dense", "dense_cvar", "equal_weight", "inverse_volatility"]
    for label, spec in (("net_dense", DENSE), ("dense_cvar", CVAR)):
        alone_cfg = BacktestConfig.model_validate({**CFG, "network": spec, "benchmarks": []})
        _, alone = run_backtest(alone_cfg, tmp_path / label)
        pd.testing.assert_series_equal(result.returns[label], alone.returns.iloc[:, 0], check_names=False)
        assert (folder / "checkpoints" / label / "trainer.pt").is_file()
        bundle = json.loads((folder / "strategies" / label / "strategy.json").read_text())
        assert bundle["kind"] == "network" and bundle["name"] == "dense"
        assert bundle["params"]["hidden"] == spec["params"]["hidden"]
    stats = json.loads((folder / "stats.json").read_text())
    assert stats["n_trials"] == 4 and set(stats["strategies"]) == set(result.strategies)
    html = (folder / "report.html").read_text()
    assert "dense_cvar" in html and "&#x27;cvar&#x27; loss" in html and "&#x27;sharpe&#x27; loss" in html


def test_networks_are_cross_validated_together(tmp_path: Path) -> None:
    cv = {"n_folds": 3, "n_test_folds": 2, "executor": "serial"}
    config = BacktestConfig.model_validate({**CFG, "networks": [DENSE, CVAR], "cv": cv,
                                            "benchmarks": ["equal_weight"]})
    folder, _ = run_backtest(config, tmp_path / "run")
    data = json.loads((folder / "cv.json").read_text())
    assert set(data["strategies"]) == {"net_dense", "dense_cvar", "equal_weight"}
    assert len(data["strategies"]["dense_cvar"]["sharpe"][0]) == 2  # 3 splits -> 2 paths
    assert data["strategies"]["dense_cvar"]["sharpe"] != data["strategies"]["net_dense"]["sharpe"]
    # dropping a network reruns nothing: the other tasks' fingerprints do not depend on it
    before = {p: p.stat().st_mtime_ns for p in (folder / "cv" / "tasks").rglob("result.json")}
    run_backtest(config.model_copy(update={"networks": [config.networks[0]]}), tmp_path / "run")
    after = {p: p.stat().st_mtime_ns for p in (folder / "cv" / "tasks").rglob("result.json")}
    assert all(after[p] == t for p, t in before.items())
    assert set(json.loads((folder / "cv.json").read_text())["strategies"]) == {"net_dense", "equal_weight"}


def test_networks_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either network or networks"):
        BacktestConfig.model_validate({**CFG, "network": DENSE, "networks": [CVAR]})
    with pytest.raises(ValueError, match="repeat"):
        BacktestConfig.model_validate({**CFG, "networks": [DENSE, {**DENSE, "loss": "cvar"}]})
    bad = BacktestConfig.model_validate({**CFG, "networks": [DENSE, {**CVAR, "loss": "nope"}]})
    with pytest.raises(ConfigError, match=r"networks\[1\]\.loss"):
        run_backtest(bad, tmp_path / "bad")
    clash = BacktestConfig.model_validate({**CFG, "networks": [{**DENSE, "label": "equal_weight"}]})
    with pytest.raises(ConfigError, match="also a benchmark"):
        run_backtest(clash, tmp_path / "clash")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "clash").exists()


def test_experiment_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradfolio.cli.app import console

    monkeypatch.setattr(console, "_width", 220)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**CFG, "networks": [DENSE, CVAR], "benchmarks": ["equal_weight"]}))
    result = CliRunner().invoke(app, ["experiment", "--config", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    res = BacktestResult.load(tmp_path / "run")
    assert res.strategies == ["net_dense", "dense_cvar", "equal_weight"]
    assert "dense_cvar" in result.output and "vs 1/N" in result.output


def test_example_experiment_parses() -> None:
    from gradfolio.experiments.backtest.config import load_backtest_config

    cfg = load_backtest_config(Path(__file__).resolve().parents[3] / "examples" / "experiment.yaml")
    assert list(cfg.network_configs()) == ["net_dense", "dense_cvar", "net_conv"]
    assert cfg.network_configs()["dense_cvar"].network.loss == "cvar"
    assert cfg.seeds == [0, 1, 2] and cfg.cv is not None and cfg.cv.n_folds == 6
