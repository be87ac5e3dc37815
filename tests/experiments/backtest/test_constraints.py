"""The backtest config's constraints section: resolved against the data, bound to the network and the convex benchmarks."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest

from gradfolio.errors import ConfigError, DataError, InfeasibleError
from gradfolio.experiments.backtest import run as runner
from gradfolio.experiments.backtest.config import BacktestConfig, load_backtest_config
from gradfolio.experiments.backtest.run import load_returns, run_backtest
from gradfolio.experiments.config_io import parse_config

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


CONSTRAINED = {
    "seed": 3, "tracking": False, "dtype": "float64",
    "benchmarks": ["equal_weight", "min_variance", "max_sharpe", "min_cvar", "risk_parity", "hrp"],
    "data": {"start": "2019-01-01", "end": "2020-12-31", "lookback": 40, "horizon": 5,
             "assets": ["AAPL", "JPM", "KO", "XOM", "MSFT", "PG"]},
    "split": {"val_start": "2020-01-01", "test_start": "2020-06-01"},
    "backtest": {"rebalance_every": 10},
    "network": {"name": "markowitz", "params": {"hidden": 4}},
    "train": {"epochs": 1},
    "constraints": {"long_only": True, "max_weight": 0.3, "lower": {"XOM": 0.1},
                    "groups": [{"assets": ["AAPL", "MSFT"], "upper": 0.35, "name": "tech"}],
                    "sectors": {"file": str(EXAMPLES / "sectors.csv"), "bounds": {"consumer_staples": [None, 0.4]}}},
}


def test_constraints_example_parses_and_resolves() -> None:
    config = load_backtest_config(EXAMPLES / "backtest_constraints.yaml")
    c = config.constraints
    assert c is not None and c.max_weight == 0.3 and c.sectors is not None
    columns = list(load_returns(config).columns)
    spec = c.spec(columns)
    names = {g.name: tuple(g.assets) for g in spec.groups}
    idx = columns.index
    assert names["big_tech"] == (idx("AAPL"), idx("MSFT"))
    assert names["energy"] == tuple(idx(a) for a in ("CVX", "RRC", "XOM"))
    assert spec.lower[idx("XOM")] == 0.02 and spec.upper[idx("AMD")] == 0.05 and spec.upper[idx("AAPL")] is None
    spec.compile(len(columns))  # feasible


def test_constrained_backtest_binds_network_and_convex_benchmarks(tmp_path: Path) -> None:
    config = BacktestConfig.model_validate(CONSTRAINED)
    with pytest.warns(UserWarning) as caught:
        folder, result = run_backtest(config, tmp_path / "run")
    messages = [str(w.message) for w in caught]
    assert any("the benchmarks ['equal_weight'] are not convex problems and run without" in m for m in messages)
    assert any("['hrp'] apply only the per-asset bounds" in m for m in messages)
    columns = list(result.weights["min_variance"].columns)
    i = columns.index
    bound = {"net_markowitz", "min_variance", "max_sharpe", "min_cvar", "risk_parity"}
    assert bound | {"equal_weight", "hrp"} == set(result.weights)
    for name in bound:
        w = result.weights[name].to_numpy()
        assert np.abs(w.sum(axis=1) - 1).max() < 1e-9, name
        assert w.max() <= 0.3 + 1e-9 and w.min() >= -1e-9, name  # the 0.30 cap to solver tolerance
        assert w[:, i("XOM")].min() >= 0.1 - 1e-9, name
        assert (w[:, i("AAPL")] + w[:, i("MSFT")]).max() <= 0.35 + 1e-9, name
        assert (w[:, i("KO")] + w[:, i("PG")]).max() <= 0.4 + 1e-9, name
    hrp = result.weights["hrp"].to_numpy()  # hrp: the per-asset bounds only
    assert hrp.max() <= 0.3 + 1e-12 and hrp[:, i("XOM")].min() >= 0.1 - 1e-12
    assert np.abs(result.weights["equal_weight"].to_numpy() - 1 / 6).max() < 1e-12  # unconstrained
    bundle = json.loads((folder / "strategies" / "min_cvar" / "strategy.json").read_text())
    assert bundle["params"]["constraints"]["groups"][0] == {"assets": [0, 4], "lower": None, "upper": 0.35, "name": "tech"}
    assert "unconstrained: ['equal_weight', 'hrp']" in html.unescape((folder / "report.html").read_text())
    from gradfolio.allocation.strategy import load_strategy

    for label in ("net_markowitz", "min_cvar", "risk_parity"):  # the bundles rebuild the constrained strategies
        model = load_strategy(folder, label).model
        spec = model.allocator.problem.constraints if label.startswith("net") else model.constraints
        assert spec.max_weight == 0.3 and spec.lower[i("XOM")] == 0.1 and spec.lower[i("AAPL")] is None, label


@pytest.mark.parametrize(
    ("update", "error", "match"),
    [
        ({"network": {"name": "dense"}}, ConfigError,
         r"constraints: network 'dense' with allocator 'softmax' has no convex layer"),
        ({"constraints": {"groups": [{"assets": ["AAPL", "TSLA"], "upper": 0.3, "name": "tech"}]}}, DataError,
         r"group 'tech' names ticker 'TSLA', which is not a column of the data"),
        ({"constraints": {"turnover": 0.2}}, ConfigError,
         r"field 'constraints.turnover': Value error, a turnover limit needs each strategy's previous weights"),
        ({"constraints": {"long_only": True, "max_weight": 0.1}}, InfeasibleError, r"budget=1 is outside \[0, 0.6\]"),
        ({"network": {"name": "markowitz", "params": {"constraints": {"long_only": True}}}}, ConfigError,
         "network.params.constraints: constraints are given both there and in the constraints section"),
        ({"benchmark_params": {"min_cvar": {"constraints": {"upper": 0.5}}}}, ConfigError,
         "benchmark_params.min_cvar.constraints: constraints are given both there"),
        ({"constraints": {"sectors": {"file": "nowhere.csv", "bounds": {"tech": [None, 0.3]}}}}, DataError,
         "sector map 'nowhere.csv' cannot be read"),
    ],
)
def test_bad_constraints_fail_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, update: dict,
                                              error: type, match: str) -> None:
    monkeypatch.setattr(runner, "train_network", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    raw = {**CONSTRAINED, **update}
    if "network" not in update:
        raw["network"] = CONSTRAINED["network"]
    with pytest.raises(error, match=match):  # as a file gives it, or when the data is loaded
        run_backtest(parse_config(BacktestConfig, raw, where="run.yaml"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
