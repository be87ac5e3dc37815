"""A whole backtest per seed (`gradfolio backtest/experiment --seeds`): each seed's run folder is the
run of that seed alone, and the summary is the t interval over seeds."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from gradfolio.cli import app
from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.backtest.run import run_backtest
from gradfolio.experiments.backtest.seeds import METRICS, backtest_seeds
from gradfolio.stats import t_interval

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = {
    "seed": 9, "benchmarks": ["equal_weight", "min_variance"], "tracking": False, "figures": False,
    "network": {"name": "dense", "loss": "sharpe", "params": {"hidden": [6]}},
    "data": {"start": "2018-06-01", "end": "2020-12-31", "lookback": 20, "horizon": 5, "step": 5,
             "assets": ["AAPL", "JPM", "KO", "XOM"]},
    "split": {"val_start": "2020-01-01", "test_start": "2020-06-01"},
    "backtest": {"rebalance_every": 10, "cost_bps": 20},
    "train": {"epochs": 2, "patience": 2},
    "stats": {"n_resamples": 200, "n_multiple_resamples": 100},
}


def test_each_seed_is_the_run_of_that_seed(tmp_path: Path) -> None:
    config = BacktestConfig.model_validate(CFG)
    per_seed, summary, diffs, root = backtest_seeds(config, [3, 1], tmp_path / "seeds")
    _, alone = run_backtest(config.model_copy(update={"seed": 1}), tmp_path / "alone")
    got = per_seed[per_seed["seed"] == 1].set_index("strategy")[list(METRICS)]
    pd.testing.assert_frame_equal(got, alone.metrics()[list(METRICS)], check_names=False)
    net = per_seed[per_seed["strategy"] == "net_dense"]["sharpe_ratio"].tolist()
    assert net[0] != net[1]  # the seed changes the network
    assert summary.loc["net_dense", "sharpe_ratio_ci"] == pytest.approx(t_interval(net)[1])
    assert summary.loc["min_variance", "sharpe_ratio_ci"] == 0.0  # the benchmarks do not depend on the seed
    assert set(diffs["strategy"]) == {"net_dense", "min_variance"} and set(diffs["baseline"]) == {"equal_weight"}
    rows = diffs.set_index(["strategy", "metric"])
    assert not rows.loc[("min_variance", "sharpe_ratio"), "seed_dependent"]
    assert not rows.loc[("min_variance", "sharpe_ratio"), "significant"]  # a zero-width seed interval proves nothing
    assert bool(rows.loc[("net_dense", "sharpe_ratio"), "seed_dependent"])
    import json

    p = [json.loads((root / f"seed_{s}" / "stats.json").read_text())["strategies"]["net_dense"]["diff_pvalue"] for s in (3, 1)]
    assert rows.loc[("net_dense", "sharpe_ratio"), "hac_p_max"] == max(p)
    assert math.isnan(rows.loc[("net_dense", "annualized_return"), "hac_p_max"])
    for name in ("seeds.csv", "summary.csv", "differences.csv", "summary.md", "seed_3/report.html", "seed_1/stats.json"):
        assert (root / name).is_file(), name
    assert "over 2 seeds (3, 1)" in (root / "summary.md").read_text()


def test_runner_metrics_and_seed_checks(tmp_path: Path) -> None:
    nets = [CFG["network"], {**CFG["network"], "label": "other"}]  # a `networks` list is kept as it is
    config = BacktestConfig.model_validate({**{k: v for k, v in CFG.items() if k != "network"}, "networks": nets,
                                            "stats": {"benchmark": "ew"}})
    seen: list[tuple[int, str]] = []

    def runner(cfg: BacktestConfig, folder: Path) -> pd.DataFrame:
        seen.append((cfg.seed, folder.name))
        assert cfg.networks is not None and len(cfg.networks) == 2 and "network" not in cfg.model_fields_set
        base = {m: 0.0 for m in METRICS}
        return pd.DataFrame({"net": {**base, "sharpe_ratio": 0.5 + 0.25 * cfg.seed, "annualized_return": 0.1},
                             "ew": {**base, "sharpe_ratio": 0.4, "annualized_return": 0.1}}).T

    per_seed, summary, diffs, _ = backtest_seeds(config, [0, 2, 5], tmp_path, runner=runner)
    assert seen == [(0, "seed_0"), (2, "seed_2"), (5, "seed_5")]
    row = diffs.set_index(["strategy", "metric"]).loc[("net", "sharpe_ratio")]
    assert row["diff"] == pytest.approx(0.5 + 0.25 * 7 / 3 - 0.4)
    assert row["ci"] == pytest.approx(t_interval([0.1, 0.6, 1.35])[1])
    assert bool(row["significant"]) == (row["diff"] > row["ci"]) and bool(row["seed_dependent"])
    assert math.isnan(row["hac_p_max"])  # the runner wrote no stats.json
    for bad in ([1], [2, 2], [-1, 3]):
        with pytest.raises(ConfigError, match="--seeds"):
            backtest_seeds(config, bad, tmp_path, runner=runner)

    def short(cfg: BacktestConfig, folder: Path) -> pd.DataFrame:
        return pd.DataFrame({"net": {"sharpe_ratio": 1.0}}).T

    with pytest.raises(ConfigError, match="lack"):
        backtest_seeds(config, [0, 1], tmp_path, runner=short)


def test_cli_seeds(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**CFG, "benchmarks": ["equal_weight"]}))
    result = CliRunner().invoke(app, ["backtest", "--config", str(path), "--out", str(tmp_path / "r"), "--seeds", "0,4"])
    assert result.exit_code == 0, result.output
    assert "Mean ± 95% t half-width over seeds 0, 4" in result.output and "net_dense" in result.output
    assert (tmp_path / "r" / "seed_4" / "report.html").is_file()
    bad = CliRunner().invoke(app, ["experiment", "--config", str(path), "--out", str(tmp_path / "x"), "--seeds", "0 a"])
    assert bad.exit_code != 0 and "--seeds '0 a'" in bad.output


@pytest.mark.parametrize("name", ["families.yaml", "families_cv.yaml"])
def test_families_example_is_valid(name: str) -> None:
    from gradfolio.experiments.backtest.config import load_backtest_config
    from gradfolio.experiments.backtest.holding import check_osbl_config

    cfg = load_backtest_config(Path(__file__).resolve().parents[3] / "examples" / name)
    cfg.check_references()
    assert (cfg.cv is not None) == (name == "families_cv.yaml")
    variants = cfg.network_configs()
    assert list(variants) == ["e2e_dense", "e2e_lstm", "pto_ridge", "pto_lstm_mv", "dfl_lstm", "eiie"]
    check_osbl_config(variants["eiie"])  # EIIE's step == horizon rule holds for the shared windows
    assert [a.algo for a in cfg.agents] == ["ppo"] and cfg.backtest.cost_bps == 10
