"""Saved strategies: bundles written by run_backtest, load_strategy, predict, safety of loading, rebalance plans."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import gradfolio
from gradfolio.allocation import make_network
from gradfolio.allocation.classical import MinimumVariance
from gradfolio.allocation.strategy import (
    DataFingerprint,
    load_strategy,
    read_holdings,
    rebalance_plan,
    returns_fingerprint,
    save_strategy,
)
from gradfolio.allocation.strategy import bundle as bundle_mod
from gradfolio.costs import ProportionalCost
from gradfolio.data import load_prices, to_returns
from gradfolio.errors import ConfigError, DataError, GradfolioError
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.backtest.run import run_backtest

ASSETS = ["AAPL", "JPM", "KO", "XOM", "MSFT"]


def small_config(**update: object) -> BacktestConfig:
    base = {
        "seed": 3, "tracking": False, "benchmarks": ["hrp", "min_variance", "inverse_volatility"],
        "data": {"start": "2019-01-01", "end": "2020-12-31", "lookback": 40, "horizon": 5, "assets": ASSETS,
                 "kind": "log", "gap": 1},
        "split": {"val_start": "2020-01-01", "test_start": "2020-06-01"},
        "backtest": {"rebalance_every": 10, "cost_bps": 20, "retrain_every": 40, "retrain_epochs": 1},
        "network": {"name": "dense", "params": {"hidden": [16]}}, "train": {"epochs": 2},
    }
    return BacktestConfig.model_validate({**base, **update})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, pd.DataFrame]:
    folder, result = run_backtest(small_config(), tmp_path_factory.mktemp("runs") / "run")
    prices = load_prices("sp500")[ASSETS].loc["2019-01-01":"2020-12-31"]
    return folder, result, prices


def test_round_trip_equals_the_backtests_last_weights_bit_for_bit(run: tuple) -> None:
    folder, result, prices = run
    assert sorted(p.name for p in (folder / "strategies").iterdir()) == sorted(result.strategies)
    for name in ("net_dense", "hrp", "min_variance", "inverse_volatility"):
        saved = load_strategy(folder, name)
        date = result.weights[name].index[-1]
        w = saved.predict(prices.loc[:date])
        # the saved network is the last refit's (retrain_every=40), the one that made the last weights
        np.testing.assert_array_equal(w.to_numpy(), result.weights[name].iloc[-1].to_numpy())
        assert list(w.index) == ASSETS and w.attrs["as_of"] == date and w.attrs["gap"] == 1
        # the same from returns (prices=False) and with auto-detection
        returns = to_returns(prices.loc[:date])
        np.testing.assert_array_equal(saved.predict(returns, prices=False).to_numpy(), w.to_numpy())
        np.testing.assert_array_equal(saved.predict(returns).to_numpy(), w.to_numpy())
        np.testing.assert_array_equal(saved.predict(prices, as_of=date).to_numpy(), w.to_numpy())
    # the default is the network, and gradfolio.load_strategy is the same function
    default = gradfolio.load_strategy(folder)
    assert default.label == "net_dense" and default.kind == "network" and default.dtype == torch.float32
    assert load_strategy(folder, "hrp").dtype == torch.float64  # benchmarks in float64 by default
    # an earlier rebalance (before the last refit) is NOT what the saved network gives: the refit changed it
    first = result.weights["net_dense"].index[0]
    assert not np.array_equal(
        default.predict(prices.loc[:first]).to_numpy(), result.weights["net_dense"].iloc[0].to_numpy()
    )


def test_bundle_metadata(run: tuple) -> None:
    folder, _, _ = run
    spec = json.loads((folder / "strategies" / "net_dense" / "strategy.json").read_text())
    assert spec["format_version"] == 1 and spec["gradfolio_version"] == gradfolio.__version__
    assert spec["assets"] == ASSETS and spec["lookback"] == 40 and spec["gap"] == 1
    assert spec["returns_kind"] == "log" and spec["dtype"] == "float32" and spec["params"] == {"hidden": [16]}
    assert spec["rebalance_every"] == 10 and spec["cost_bps"] == 20.0
    config = small_config()
    prices = load_prices("sp500")[ASSETS].loc["2019-01-01":"2020-12-31"]
    returns = to_returns(prices)
    assert spec["data_fingerprint"]["digest"] == returns_fingerprint(returns).digest
    assert spec["data_fingerprint"]["rows"] == len(returns) and spec["data_fingerprint"]["last"] == "2020-12-31"
    assert config.benchmark_dtype == "float64"
    hrp = json.loads((folder / "strategies" / "hrp" / "strategy.json").read_text())
    assert hrp["kind"] == "classical" and hrp["params"]["returns_kind"] == "log" and hrp["dtype"] == "float64"


def test_fingerprint_sees_dates_names_and_values() -> None:
    frame = pd.DataFrame({"a": [0.01, -0.02], "b": [0.0, 0.03]}, index=pd.bdate_range("2020-01-01", periods=2))
    base = returns_fingerprint(frame).digest
    assert returns_fingerprint(frame.copy()).digest == base
    assert returns_fingerprint(frame.rename(columns={"a": "c"})).digest != base
    assert returns_fingerprint(frame.set_axis(pd.bdate_range("2020-02-03", periods=2))).digest != base
    bumped = frame.copy()
    bumped.iloc[1, 1] = np.nextafter(0.03, 1.0)
    assert returns_fingerprint(bumped).digest != base


def _returns(T: int = 80, assets: tuple[str, ...] = ("A", "B", "C")) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        rng.normal(0.0005, 0.01, size=(T, len(assets))), index=pd.bdate_range("2021-01-01", periods=T), columns=list(assets)
    )


def _network_bundle(tmp_path: Path, dtype: torch.dtype = torch.float32) -> Path:
    model = make_network("dense", n_assets=3, lookback=10, seed=1, hidden=[8]).to(dtype)
    return save_strategy(
        tmp_path / "net", model, kind="network", name="dense", params={"hidden": [8]}, assets=["A", "B", "C"],
        returns_kind="simple", lookback=10, gap=0, dtype=dtype, data_fingerprint=_returns(),
    )


def test_shuffled_columns_give_the_same_weights_reordered(tmp_path: Path) -> None:
    saved = load_strategy(_network_bundle(tmp_path))
    returns = _returns()
    w = saved.predict(returns, prices=False)
    shuffled = saved.predict(returns[["C", "A", "B"]], prices=False)
    pd.testing.assert_series_equal(shuffled, w)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)


def test_float64_input_into_a_float32_model(tmp_path: Path) -> None:
    saved = load_strategy(_network_bundle(tmp_path))
    returns = _returns()
    w = saved.predict(returns, prices=False)  # float64 frame into a float32 network: no 'mixed dtype'
    X = torch.tensor(returns.to_numpy()[-10:])[None, None]  # float64 window
    expected = saved.model(X.to(torch.float32))[0].detach().double().numpy()
    np.testing.assert_array_equal(w.to_numpy(), expected)
    np.testing.assert_array_equal(saved(X)[0].double().numpy(), expected)  # the callable casts too
    w32 = saved.predict(returns.astype(np.float32), prices=False)
    assert w32.dtype == np.float64 and np.isfinite(w32).all()


def test_missing_and_extra_tickers_are_named(tmp_path: Path) -> None:
    saved = load_strategy(_network_bundle(tmp_path))
    returns = _returns(assets=("A", "B", "C", "D", "E"))
    with pytest.raises(ConfigError, match=r"^data: extra ticker\(s\) \['D', 'E'\] that strategy 'dense' was not trained on.*--align"):
        saved.predict(returns, prices=False)
    with pytest.raises(ConfigError, match=r"missing ticker\(s\) \['C'\] .*\(and extra \['D'\]\)"):
        saved.predict(returns[["A", "B", "D"]], prices=False)
    with pytest.warns(UserWarning, match=r"dropped ticker\(s\) \['D', 'E'\]"):
        aligned = saved.predict(returns, prices=False, align=True)
    pd.testing.assert_series_equal(aligned, saved.predict(returns[["A", "B", "C"]], prices=False))


def test_predict_input_errors(tmp_path: Path) -> None:
    saved = load_strategy(_network_bundle(tmp_path))
    returns = _returns()
    with pytest.raises(DataError, match=r"data: 9 rows up to .*needs 10 returns \(lookback\)"):
        saved.predict(returns.iloc[:9], prices=False)
    prices = (1 + returns).cumprod() * 50
    with pytest.raises(DataError, match=r"needs 11 prices \(lookback 10 \+ 1\)"):
        saved.predict(prices.iloc[:10])
    with pytest.raises(DataError, match=r"no row on or before as_of=2020-06-01"):
        saved.predict(returns, as_of="2020-06-01", prices=False)
    with pytest.raises(ConfigError, match=r"as_of='yesterday' is not a date"):
        saved.predict(returns, as_of="yesterday", prices=False)
    with pytest.raises(ConfigError, match="cannot tell prices from returns"):
        saved.predict(returns.abs() * 0 + 0.01)
    bad = returns.copy()
    bad.iloc[-2, 1] = np.nan
    with pytest.raises(DataError, match=r"column 'B', .*nan is not a finite simple return"):
        saved.predict(bad, prices=False)
    with pytest.raises(DataError, match="DatetimeIndex"):
        saved.predict(returns.reset_index(drop=True), prices=False)
    # the decision date is the last row on or before as_of (a weekend picks the Friday)
    w = saved.predict(prices, as_of="2021-03-07")
    assert w.attrs["as_of"] == pd.Timestamp("2021-03-05")


def test_crafted_weights_file_is_refused_without_running_code(tmp_path: Path) -> None:
    folder = _network_bundle(tmp_path)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple:
            return (os.system, (f"touch {marker}",))

    weights = folder / "weights.pt"
    with open(weights, "wb") as fh:
        pickle.dump({"state_dict": Exploit()}, fh)
    # the checksum in strategy.json no longer matches: refused before reading
    with pytest.raises(ConfigError, match=r"weights.pt: sha256 .* differs from strategy.json"):
        load_strategy(folder)
    # an attacker who also fixes the checksum: torch.load(weights_only=True) refuses it unread
    torch.save({"state_dict": Exploit()}, weights)
    spec = json.loads((folder / "strategy.json").read_text())
    spec["weights_sha256"] = bundle_mod._sha256(weights)
    (folder / "strategy.json").write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match=r"weights.pt asks to load posix.system, which is not plain data, and was refused unread"):
        load_strategy(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ({"name": "transformer"}, r"network name='transformer' is unknown"),
        ({"lookback": "40"}, r"field 'lookback': Input should be a valid integer"),
        ({"assets": ["A", 2, "C"]}, r"field 'assets.1': Input should be a valid string"),
        ({"assets": ["A", "A", "C"]}, r"field 'assets' repeats \['A'\]"),
        ({"dtype": "float16"}, r"field 'dtype'"),
        ({"surprise": 1}, r"field 'surprise': Extra inputs are not permitted"),
        ({"params": {"hidden": [8], "depth": 3}}, r"strategy.json: params.depth: Extra inputs are not permitted \(got 3\)"),
        ({"params": {"hidden": [9]}}, r"the weights do not fit the network 'dense'"),
        ({"format_version": 2}, r"bundle format_version 2 is unknown to gradfolio 0.1.0 \(it reads format_version 1\)"),
        ({"format": "pickle"}, r"format 'pickle' is not 'gradfolio-strategy'"),
        ({"gradfolio_version": "1.0.0"}, r"written by gradfolio 1.0.0, this is gradfolio 0.1.0 \(another major version\)"),
    ],
)
def test_tampered_strategy_json_is_one_config_error(tmp_path: Path, edit: dict, match: str) -> None:
    folder = _network_bundle(tmp_path)
    spec = json.loads((folder / "strategy.json").read_text())
    (folder / "strategy.json").write_text(json.dumps({**spec, **edit}))
    with pytest.raises(ConfigError, match=match) as info:
        load_strategy(folder)
    assert "\n" not in str(info.value)


def test_newer_minor_version_loads_with_a_warning(tmp_path: Path) -> None:
    folder = _network_bundle(tmp_path)
    spec = json.loads((folder / "strategy.json").read_text())
    (folder / "strategy.json").write_text(json.dumps({**spec, "gradfolio_version": "0.3.1"}))
    with pytest.warns(UserWarning, match=r"written by gradfolio 0.3.1, newer than this gradfolio 0.1.0"):
        saved = load_strategy(folder)
    assert saved.assets == ("A", "B", "C")


def test_not_a_bundle_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"neither a strategy bundle \(strategy.json\) nor a run folder"):
        load_strategy(tmp_path)
    run = tmp_path / "run"
    for label in ("hrp", "equal_weight"):
        save_strategy(run / "strategies" / label, MinimumVariance(), kind="classical", name="min_variance",
                      label=label, params={}, assets=["A", "B"], returns_kind="simple", lookback=5)
    with pytest.raises(ConfigError, match=r"holds strategies \['equal_weight', 'hrp'\]; pick one .*--strategy"):
        load_strategy(run)
    with pytest.raises(ConfigError, match=r"no strategy 'nope'; the run saved \['equal_weight', 'hrp'\]"):
        load_strategy(run, "nope")
    assert load_strategy(run, "hrp").label == "hrp"


def test_save_refuses_what_cannot_be_data(tmp_path: Path) -> None:
    model = MinimumVariance()
    with pytest.raises(ConfigError, match=r"strategy 'mv': parameters .* cannot be saved in a strategy bundle"):
        save_strategy(tmp_path / "b", model, kind="classical", name="min_variance", label="mv",
                      params={"covariance": torch.eye(2)}, assets=["A", "B"], returns_kind="simple", lookback=5)
    with pytest.raises(ConfigError, match=r"asset names \['A', 'A'\] repeat"):
        save_strategy(tmp_path / "b", model, kind="classical", name="min_variance", params={},
                      assets=["A", "A"], returns_kind="simple", lookback=5)
    assert not (tmp_path / "b").exists() and not list(tmp_path.iterdir())  # nothing written


def test_classical_round_trip_keeps_parameters_and_float64(tmp_path: Path) -> None:
    model = MinimumVariance(covariance="ledoit_wolf", returns_kind="log")
    folder = save_strategy(tmp_path / "mv", model, kind="classical", name="min_variance",
                           params={"covariance": "ledoit_wolf", "returns_kind": "log"}, assets=["A", "B", "C"],
                           returns_kind="log", lookback=30, dtype=torch.float64,
                           data_fingerprint=DataFingerprint(digest="0" * 64, rows=0, first=None, last=None))
    saved = load_strategy(folder)
    returns = _returns()
    X = torch.log1p(torch.tensor(returns.to_numpy()[-30:])).contiguous()[None, None]  # make_windows' layout
    np.testing.assert_array_equal(saved.predict(returns, prices=False).to_numpy(), model(X)[0].numpy())
    # saving again replaces the bundle in one step (no leftovers beside it)
    save_strategy(folder, model, kind="classical", name="min_variance", params={}, assets=["A", "B", "C"],
                  returns_kind="simple", lookback=30, dtype="float64")
    assert load_strategy(folder).returns_kind == "simple" and sorted(p.name for p in tmp_path.iterdir()) == ["mv"]


def test_rebalance_plan_matches_a_hand_computation(tmp_path: Path) -> None:
    target = pd.Series([0.5, 0.3, 0.1], index=["A", "B", "C"])
    current = pd.Series([0.2, 0.4, 0.0], index=["C", "A", "B"])  # any order
    plan = rebalance_plan(target, current, ProportionalCost([0.001, 0.002, 0.003]), capital=20_000.0)
    # trades: A 0.5-0.4=0.1, B 0.3-0=0.3, C 0.1-0.2=-0.1
    np.testing.assert_allclose(plan.table["trade"].to_numpy(), [0.1, 0.3, -0.1], atol=1e-15)
    assert plan.turnover == pytest.approx(0.5, abs=1e-15)
    assert plan.cost == pytest.approx(0.001 * 0.1 + 0.002 * 0.3 + 0.003 * 0.1, abs=1e-15)
    assert plan.cost_value == pytest.approx(20_000 * 0.001, abs=1e-9)
    np.testing.assert_allclose(plan.table["trade_value"].to_numpy(), [2000.0, 6000.0, -2000.0], atol=1e-9)
    assert plan.cash_before == pytest.approx(0.4) and plan.cash_after == pytest.approx(0.1)
    cash_only = rebalance_plan(target)
    assert cash_only.turnover == pytest.approx(0.9) and cash_only.cost == 0.0 and cash_only.capital is None
    with pytest.raises(ConfigError, match="capital=-1"):
        rebalance_plan(target, capital=-1.0)


def test_read_holdings_layouts(tmp_path: Path) -> None:
    assets = ("A", "B", "C")
    f = tmp_path / "h.csv"
    f.write_text("ticker,value\nB,3000\nA,1000\ncash,1000\n")
    held = read_holdings(f, assets)
    assert held.capital == 5000.0 and held.weights.tolist() == [0.2, 0.6, 0.0]
    assert read_holdings(f, assets, capital=10_000.0).weights.tolist() == [0.1, 0.3, 0.0]
    f.write_text("ticker,shares\nA,10\nC,4\n")
    held = read_holdings(f, assets, last_prices=pd.Series({"A": 30.0, "B": 1.0, "C": 25.0}))
    assert held.capital == 400.0 and held.weights.tolist() == [0.75, 0.0, 0.25]
    f.write_text("ticker,weight\nC,0.5\n")
    assert read_holdings(f, assets).weights.tolist() == [0.0, 0.0, 0.5] and read_holdings(f, assets).capital is None
    for text, match in [
        ("ticker,value\nZ,1\n", r"ticker\(s\) \['Z'\] are not among the strategy's assets"),
        ("ticker,value\nA,1\nA,2\n", r"row 3: ticker 'A' appears twice"),
        ("ticker,value\nA,abc\n", r"row 2: ticker 'A', value 'abc' is not a finite number"),
        ("ticker,weight,value\nA,1,1\n", r"exactly one of 'weight'"),
        ("name,weight\nA,1\n", r"a 'ticker' column"),
    ]:
        f.write_text(text)
        with pytest.raises(ConfigError, match=match):
            read_holdings(f, assets)
    f.write_text("ticker,value\nA,100\n")
    with pytest.raises(ConfigError, match=r"--capital 50 is below the holdings"):
        read_holdings(f, assets, capital=50.0)
    f.write_text("ticker,shares\nA,1\n")
    with pytest.raises(ConfigError, match="holdings in shares need prices"):
        read_holdings(f, assets)


def test_errors_are_gradfolio_errors() -> None:
    assert issubclass(ConfigError, GradfolioError)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradfolio.load_strategy is load_strategy
