"""Predict-then-optimize networks in a backtest config: `gradfolio backtest` trains pto_ridge on the forecast MSE
(closed form, refitted) and pto_lstm decision-focused through the convex layer, and their saved bundles predict the
backtest's weights; the config is checked before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from gradfolio.allocation import RidgeForecaster, forecast_target
from gradfolio.allocation.strategy import load_strategy
from gradfolio.cli import app
from gradfolio.data import load_prices
from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest.build import (
    build_network,
    load_returns,
    network_params,
    split_windows,
)
from gradfolio.experiments.backtest.config import BacktestConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ASSETS = ["AAPL", "JPM", "KO", "XOM", "MSFT"]
CFG = {
    "seed": 2, "benchmarks": ["equal_weight"], "tracking": False, "figures": False,
    "data": {"start": "2018-06-01", "end": "2020-12-31", "lookback": 20, "horizon": 5, "step": 5, "assets": ASSETS},
    "split": {"val_start": "2020-01-01", "test_start": "2020-06-01"},
    "backtest": {"rebalance_every": 10, "cost_bps": 20, "retrain_every": 60},
    "train": {"epochs": 2, "patience": 2},
    "stats": {"enabled": False},
    "networks": [
        {"name": "pto_ridge", "loss": "forecast_mse", "params": {"forecaster_params": {"alpha": 1e-3}}},
        {"name": "pto_lstm", "loss": "sharpe",
         "params": {"optimizer": "convex", "gamma": 4.0, "forecaster_params": {"hidden": 4}}},
    ],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pto")
    (root / "c.yaml").write_text(yaml.safe_dump(CFG))
    result = CliRunner().invoke(app, ["backtest", "--config", str(root / "c.yaml"), "--out", str(root / "run")])
    assert result.exit_code == 0, result.output
    return root / "run"


def _weights(folder: Path, label: str) -> pd.DataFrame:
    long = pd.read_parquet(folder / "weights.parquet")
    return long[long["strategy"] == label].pivot(index="date", columns="asset", values="weight_after")[ASSETS]


@pytest.mark.parametrize("label", ["net_pto_ridge", "net_pto_lstm"])
def test_the_saved_bundle_predicts_the_backtests_last_weights(run: Path, label: str) -> None:
    weights = _weights(run, label)
    assert len(weights) > 5 and np.allclose(weights.sum(axis=1), 1.0, atol=1e-6) and (weights.to_numpy() > -1e-6).all()
    assert weights.round(4).drop_duplicates().shape[0] > 3  # the forecasts move the portfolio
    spec = json.loads((run / "strategies" / label / "strategy.json").read_text())
    assert spec["kind"] == "network" and spec["name"] == label.removeprefix("net_")
    assert spec["params"]["returns_kind"] == "simple"  # data.kind, as the benchmarks get it
    last = weights.index[-1]
    prices = load_prices("sp500").loc[:"2020-12-31", ASSETS]
    predicted = load_strategy(run, label).predict(prices, as_of=last)
    np.testing.assert_allclose(predicted.to_numpy(), weights.loc[last].to_numpy(), rtol=0, atol=1e-6)


def test_the_ridge_is_fitted_in_closed_form_and_the_lstm_trained(run: Path) -> None:
    assert (run / "checkpoints" / "net_pto_lstm" / "trainer.pt").is_file()
    assert not (run / "checkpoints" / "net_pto_ridge" / "trainer.pt").exists()  # nothing to resume: exact
    report = (run / "report.html").read_text()
    assert "fitted in closed form with the &#x27;forecast_mse&#x27; loss" in report
    # the first fit is the exact ridge on the training windows (before the refits of the walk-forward)
    config = BacktestConfig.model_validate(CFG).network_configs()["net_pto_ridge"]
    returns = load_returns(config)
    train, _, _ = split_windows(config, returns)
    model, _ = build_network(config, len(ASSETS), ASSETS)
    assert model.prefit(train)
    ref = RidgeForecaster(20, alpha=1e-3).double().fit(train.X.double(), forecast_target(train.y.double()))
    torch.testing.assert_close(model.forecaster.weight.double(), ref.weight, rtol=1e-4, atol=1e-6)


def test_constraints_and_returns_kind_reach_the_pto_network() -> None:
    config = BacktestConfig.model_validate({
        **{k: v for k, v in CFG.items() if k != "networks"},
        "data": {**CFG["data"], "kind": "log"},
        "network": {"name": "pto_lstm", "loss": "sharpe", "params": {"optimizer": "convex"}},
        "constraints": {"long_only": True, "max_weight": 0.4},
    })
    params = network_params(config, ASSETS)
    assert params["returns_kind"] == "log" and params["constraints"]["max_weight"] == 0.4
    model, _ = build_network(config, len(ASSETS), ASSETS)
    assert model.returns_kind == "log" and model.layer.problem.constraints.max_weight == 0.4


@pytest.mark.parametrize(("network", "message"), [
    ({"name": "pto_lstm", "loss": "sharpe"}, r"networks\[0\]\.params\.optimizer: 'max_sharpe' is not differentiable"),
    ({"name": "dense", "loss": "forecast_mse"}, r"networks\[0\]\.loss: 'forecast_mse' trains a return forecast"),
    ({"name": "pto_ridge", "loss": "forecast_mse", "params": {"optimizer": "minimax"}},
     r"networks\[0\]\.params\.optimizer: Input should be 'max_sharpe', 'mean_variance' or 'convex'"),
    ({"name": "pto_ridge", "loss": "forecast_mse", "params": {"gamma": 0}}, r"gamma=0"),
    ({"name": "pto_ridge", "loss": "forecast_mse", "loss_params": {"penalty": "maybe"}},
     r"networks\[0\]\.loss_params\.penalty"),
])
def test_the_config_is_checked_before_any_work(network: dict, message: str) -> None:
    config = BacktestConfig.model_validate({**CFG, "networks": [network]})
    with pytest.raises(ConfigError, match=message):
        config.check_references()
        build_network(config.network_configs()[next(iter(config.network_configs()))], len(ASSETS), ASSETS)


def test_the_example_config_is_valid() -> None:
    from gradfolio.experiments.backtest.config import load_backtest_config

    config = load_backtest_config(Path(__file__).parents[3] / "examples" / "experiment_pto.yaml")
    config.check_references()
    variants = config.network_configs()
    assert list(variants) == ["pto_ridge_sharpe", "pto_lstm_mv", "dfl_lstm", "e2e_lstm"]
    models = {label: build_network(c, len(ASSETS), ASSETS)[0] for label, c in variants.items()}
    assert [getattr(m, "optimizer", None) for m in models.values()] == ["max_sharpe", "mean_variance", "convex", None]
