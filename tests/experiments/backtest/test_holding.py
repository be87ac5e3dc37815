"""EIIE in `gradfolio backtest`: a YAML run trains it by OSBL, walks it with its holdings and saves its bundle."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from gradfolio.allocation.rl.osbl import CHECKPOINT, OSBLTrainer
from gradfolio.allocation.strategy import load_strategy
from gradfolio.backtest import decision_windows
from gradfolio.cli import app
from gradfolio.data import load_prices, make_windows
from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest.build import build_network, load_returns
from gradfolio.experiments.backtest.config import BacktestConfig, load_backtest_config
from gradfolio.experiments.backtest.holding import osbl_trainer
from gradfolio.experiments.backtest.run import run_backtest
from gradfolio.tracking import NullTracker

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EIIE_NET = {"name": "eiie", "params": {"features": 3, "hidden": 6, "beta": 0.1, "commission_method": "approx"}}
CFG = {
    "seed": 3, "benchmarks": ["equal_weight"], "tracking": False, "figures": False,
    "data": {"start": "2018-01-01", "end": "2020-12-31", "lookback": 15, "horizon": 5, "step": 5,
             "assets": ["AAPL", "JPM", "KO", "XOM"]},
    "split": {"val_start": "2020-01-01", "test_start": "2020-06-01"},
    "backtest": {"rebalance_every": 5, "cost_bps": 25},
    "train": {"epochs": 3, "batch_size": 10, "lr": 0.01, "l2": 1e-4},
    "stats": {"n_resamples": 200, "n_multiple_resamples": 100},
    "network": EIIE_NET,
}


def test_yaml_backtest_trains_walks_and_saves_eiie(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**CFG, "out": str(tmp_path / "out")}))
    config = load_backtest_config(path)
    folder, result = run_backtest(config)
    assert result.strategies == ["net_eiie", "equal_weight"]
    assert (folder / "checkpoints" / CHECKPOINT).is_file()
    # the walk fed EIIE the weights after each previous trade (the PVM semantics)
    saved = load_strategy(folder, "net_eiie")
    assert saved.spec.name == "eiie" and saved.spec.params["hidden"] == 6 and saved.spec.params["beta"] == 0.1
    returns = load_returns(config)
    windows, _ = decision_windows(returns, 15, rebalance_every=5, start=result.weights["net_eiie"].index[0])
    W = torch.tensor(result.weights["net_eiie"].to_numpy())
    previous = torch.zeros(1, 4, dtype=torch.float64)
    model = saved.model
    with torch.no_grad():
        for p in range(len(windows)):
            w = model(windows.X[p : p + 1].to(torch.float32), None, previous.to(torch.float32)).to(torch.float64)
            torch.testing.assert_close(W[p : p + 1], w, rtol=0, atol=1e-6)
            previous = W[p : p + 1]
    summary = (folder / "report.html").read_text()
    assert "trained by OSBL" in summary and "25 bps" in summary
    # the training used the config: batch 10, 3 epochs of (periods // 10) steps, c = 25 bps
    state = torch.load(folder / "checkpoints" / CHECKPOINT, weights_only=True)
    assert state["fingerprint"]["commission"] == 0.0025 and state["fingerprint"]["batch_size"] == 10
    assert state["fingerprint"]["method"] == "approx" and state["fingerprint"]["beta"] == 0.1
    assert state["fingerprint"]["l2"] == 1e-4 and state["fingerprint"]["lr"] == 0.01
    periods = state["fingerprint"]["periods"]
    assert len(state["history"]["reward"]) == 3 * (periods // 10)
    # a rerun into the same folder resumes the finished training: the same weights
    _, again = run_backtest(config)
    assert again.weights["net_eiie"].equals(result.weights["net_eiie"])
    # predict feeds the holdings as the previous weights, and needs them
    prices = load_prices("sp500")[["AAPL", "JPM", "KO", "XOM"]].loc[:"2020-12-31"]
    with pytest.raises(ConfigError, match="give the current holdings"):
        saved.predict(prices, prices=True)
    held = pd.Series({"KO": 0.5, "AAPL": 0.2})
    got = saved.predict(prices, prices=True, holdings=held)
    X = make_windows(returns.loc[:"2020-12-31"], 15, horizon=0, dtype=torch.float64).X[-1:].to(torch.float32)
    prev = torch.tensor([[0.2, 0.0, 0.5, 0.0]])
    with torch.no_grad():
        expected = model(X, prev, prev)[0].double().numpy()
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=0, atol=1e-7)
    assert not np.allclose(got.to_numpy(), saved.predict(prices, prices=True, holdings=held * 0).to_numpy(), atol=1e-9)
    csv = tmp_path / "h.csv"
    csv.write_text("ticker,weight\nKO,0.5\nAAPL,0.2\n")
    out = CliRunner().invoke(app, ["predict", "--run", str(folder), "--data", "sp500", "--as-of", "2020-12-31",
                                   "--strategy", "net_eiie", "--holdings", str(csv), "--align"])
    assert out.exit_code == 0, out.output
    for ticker, weight in got.items():
        assert f"{ticker}" in out.output and f"{weight:.4f}" in out.output


def test_eiie_config_checks() -> None:
    for patch, match in [
        ({"data": {**CFG["data"], "step": 1}}, r"data.step=1, data.horizon=5"),
        ({"network": {**EIIE_NET, "params": {"returns_kind": "log"}}}, r"returns_kind='log' but data.kind='simple'"),
        ({"train": {"optimizer": "ana"}}, "trains with Adam"),
    ]:
        config = BacktestConfig.model_validate({**CFG, **patch})
        with pytest.raises(ConfigError, match=match):
            build_network(config, 4)
    config = BacktestConfig.model_validate({**CFG, "network": {**EIIE_NET, "loss": "sortino"}})
    with pytest.warns(UserWarning, match="network.loss='sortino' is not used by 'eiie'"):
        build_network(config, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, _ = build_network(BacktestConfig.model_validate(CFG), 4)
    trainer = osbl_trainer(BacktestConfig.model_validate(CFG), model, 95, Path("unused"), NullTracker(), None, 3)
    assert isinstance(trainer, OSBLTrainer) and trainer.steps == 27 and trainer.checkpoint_every == 9
    assert trainer.commission == 0.0025 and trainer.beta == 0.1 and trainer.method == "approx"


def test_eiie_is_cross_validated(tmp_path: Path) -> None:
    cv = {"method": "walk_forward", "n_folds": 3, "executor": "serial"}
    config = BacktestConfig.model_validate({**CFG, "cv": cv, "train": {**CFG["train"], "epochs": 1}})
    folder, _ = run_backtest(config, tmp_path / "cv")
    data = json.loads((folder / "cv.json").read_text())
    assert set(data["strategies"]) == {"net_eiie", "equal_weight"}
    sharpe = data["strategies"]["net_eiie"]["sharpe"]
    assert len(sharpe) == 1 and len(sharpe[0]) == 1 and np.isfinite(sharpe[0][0])


def test_eiie_is_refitted_during_the_walk_forward(tmp_path: Path) -> None:
    """A refit hook of a strategy that sees what it holds runs inside the walk (under torch.no_grad()):
    EIIE's OSBL refit still trains, at each retraining date, and the saved network is the last refit's."""
    config = BacktestConfig.model_validate({**CFG, "backtest": {**CFG["backtest"], "retrain_every": 30,
                                            "retrain_epochs": 1}, "stats": {"enabled": False}, "figures": False})
    folder, result = run_backtest(config, tmp_path / "refit")
    refits = sorted((folder / "checkpoints").glob("refit-*/" + CHECKPOINT))
    assert len(refits) >= 3
    saved = load_strategy(folder, "net_eiie")
    date = result.weights["net_eiie"].index[-1]
    prices = load_prices("sp500")[["AAPL", "JPM", "KO", "XOM"]].loc[:"2020-12-31"]
    prev = result.weights["net_eiie"].iloc[-2]
    w = saved.predict(prices.loc[:date], prices=True, holdings=prev)
    returns = load_returns(config)
    X = make_windows(returns.loc[:date], 15, horizon=0, dtype=torch.float64).X[-1:].to(torch.float32)
    with torch.no_grad():
        expected = saved.model(X, None, torch.tensor(prev.to_numpy(), dtype=torch.float32)[None])[0].double().numpy()
    np.testing.assert_allclose(w.to_numpy(), expected, rtol=0, atol=1e-7)
    np.testing.assert_allclose(result.weights["net_eiie"].iloc[-1].to_numpy(), expected, rtol=0, atol=1e-6)
