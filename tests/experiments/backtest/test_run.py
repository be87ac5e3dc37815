"""run_backtest, the backtest config and the `gradfolio demo` / `gradfolio backtest` commands."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gradfolio import risk
from gradfolio.allocation.classical import EqualWeight
from gradfolio.backtest import BacktestResult, walk_forward
from gradfolio.cli import app
from gradfolio.data import make_windows
from gradfolio.errors import ConfigError, DataError
from gradfolio.experiments.backtest import run as runner
from gradfolio.allocation.classical import PORTFOLIOS, default_benchmarks
from gradfolio.experiments.backtest.config import BacktestConfig, load_backtest_config
from gradfolio.experiments.config_io import dump_config, parse_config
from gradfolio.experiments.run_folder import RunFolder
from gradfolio.experiments.backtest.report import report_html
from gradfolio.experiments.backtest.build import build_benchmarks, load_returns, refit_windows, split_windows
from gradfolio.experiments.backtest.run import run_backtest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

SMALL = """
seed = 3
benchmarks = ["equal_weight", "inverse_volatility", "hrp"]
tracking = false

[data]
start = 2019-01-01
end = 2020-12-31
lookback = 40
horizon = 5
assets = ["AAPL", "JPM", "KO", "XOM", "MSFT"]

[split]
val_start = 2020-01-01
test_start = 2020-06-01

[backtest]
rebalance_every = 10
cost_bps = 20

[network]
enabled = false
"""


def test_examples_parse() -> None:
    yaml_cfg = load_backtest_config(EXAMPLES / "backtest.yaml")
    assert yaml_cfg.backtest.retrain_every == 250 and yaml_cfg.data.kind == "log"
    toml_cfg = load_backtest_config(EXAMPLES / "backtest.toml")
    assert toml_cfg.network.enabled is False and toml_cfg.backtest.rebalance_every == 21
    # every benchmark named in the examples exists
    assert set(yaml_cfg.benchmarks) <= set(PORTFOLIOS.names())


def test_split_by_dates_purges_overlap() -> None:
    config = BacktestConfig.model_validate(
        {"data": {"start": "2018-01-01", "end": "2021-12-31", "lookback": 30, "gap": 2, "horizon": 10},
         "split": {"val_start": "2020-01-01", "test_start": "2021-01-01"}}
    )
    returns = load_returns(config)
    train, val, test = split_windows(config, returns)
    assert val.dates[0] >= pd.Timestamp("2020-01-01") and test.dates[0] >= pd.Timestamp("2021-01-01")
    rows = returns.index
    # the last target day of train (decision + gap + horizon) comes before the first validation decision
    for early, late in ((train, val), (val, test)):
        last_target_day = rows[rows.get_loc(early.dates[-1]) + 2 + 10]
        assert last_target_day < late.dates[0]
        assert rows[rows.get_loc(early.dates[-1]) + 2 + 10 + 1] == late.dates[0]  # tight: nothing else dropped
    full = make_windows(returns, 30, gap=2, horizon=10)
    assert len(train) + len(val) + len(test) + 2 * 12 == len(full)


def test_config_errors_are_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("backtest:\n  rebalance_every: 0\n  cost_bps: -5\n")
    result = CliRunner().invoke(app, ["backtest", "--config", str(bad)])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"{bad}: field 'backtest.rebalance_every': Input should be greater than or equal to 1 (got 0)" in message
    assert "field 'backtest.cost_bps'" in message
    assert "Traceback" not in result.output
    typo = tmp_path / "typo.yaml"
    typo.write_text("netwrk:\n  name: lstm\n")
    result = CliRunner().invoke(app, ["backtest", "--config", str(typo)])
    assert result.exit_code == 2 and "field 'netwrk': Extra inputs are not permitted" in " ".join(result.output.split())
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    result = CliRunner().invoke(app, ["backtest", "--config", str(broken)])
    assert result.exit_code == 2 and "cannot parse the file" in result.output
    bad_date = tmp_path / "date.yaml"
    bad_date.write_text("data:\n  start: 2020-02-30\n")
    result = CliRunner().invoke(app, ["backtest", "--config", str(bad_date)])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{bad_date}: line 2: invalid date '2020-02-30' (day is out of range for month)" in message
    with pytest.raises(ConfigError, match=r"^benchmarks\[1\]: unknown portfolio 'max_fun'; choose one of \['cardinality', 'eigen'"):
        build_benchmarks(BacktestConfig(benchmarks=["hrp", "max_fun"]))
    with pytest.raises(ConfigError, match=r"data.assets: \['NOPE'\] not in sp500"):
        load_returns(BacktestConfig.model_validate({"data": {"assets": ["AAPL", "NOPE"]}}))
    with pytest.raises(ConfigError, match="give both val_start and test_start"):
        parse_config(BacktestConfig, {"split": {"val_start": "2020-01-01"}})


def test_backtest_command_writes_run_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["backtest", "--config", str(cfg), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and "equal_weight" in result.output
    for name in ("config.yaml", "metrics.json", "metrics.md", "returns.parquet", "weights.parquet",
                 "turnover.parquet", "report.html", "equity.png", "drawdowns.png", "weights.png"):
        assert (out / name).is_file(), name
    assert load_backtest_config(out / "config.yaml") == load_backtest_config(cfg)
    res = BacktestResult.load(out)
    assert res.strategies == ["equal_weight", "inverse_volatility", "hrp"]
    assert res.turnover.index[0] >= pd.Timestamp("2020-06-01")
    assert res.returns.index[-1] <= pd.Timestamp("2020-12-31")
    metrics = json.loads((out / "metrics.json").read_text())
    for name in res.strategies:
        assert metrics[name]["sharpe_ratio"] == pytest.approx(risk.sharpe_ratio(res.returns[name].to_numpy()))
        # 20 bps on every unit of turnover, the first rebalance buying in from cash
        assert metrics[name]["total_cost"] == pytest.approx(0.002 * res.turnover[name].sum(), rel=1e-9)
        assert res.turnover[name].iloc[0] == pytest.approx(1.0, rel=1e-6)
    # equal weight, rebalanced every 10 days: drifted weights recomputed from the price data
    prices_growth = (1.0 + load_returns(load_backtest_config(cfg)).loc[res.returns.index[:10]]).prod()
    drift = 0.2 * prices_growth / (0.2 * prices_growth).sum()
    np.testing.assert_allclose(res.weights_before["equal_weight"].iloc[1].to_numpy(), drift.to_numpy(), rtol=1e-6)


def test_no_figures_writes_the_report_without_pngs(tmp_path: Path) -> None:
    """``--no-figures`` (config ``figures: false``) skips the PNG files; the rest of the folder is written."""
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["backtest", "--config", str(cfg), "--out", str(out), "--no-figures"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and (out / "metrics.md").is_file()
    assert not list(out.glob("*.png"))
    assert load_backtest_config(out / "config.yaml").figures is False
    assert load_backtest_config(cfg).figures is True  # the default


def test_run_is_tracked_in_mlflow(tmp_path: Path) -> None:
    config = load_backtest_config(EXAMPLES / "backtest.toml")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = config.model_copy(
        update={
            "tracking": True, "tracking_uri": uri, "benchmarks": ["equal_weight"],
            "data": config.data.model_copy(update={"start": dt.date(2015, 6, 1)}),
        }
    )
    folder, result = run_backtest(config, tmp_path / "tracked")
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gradfolio-backtest").experiment_id])
    assert run.data.params["backtest.rebalance_every"] == "21"
    assert run.data.metrics["equal_weight.sharpe_ratio"] == pytest.approx(
        result.metrics().loc["equal_weight", "sharpe_ratio"]
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "metrics.json", "returns.parquet"} <= artifacts


def test_demo_quick_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--no-track"])
    assert result.exit_code == 0, result.output
    res = BacktestResult.load(out)
    # the trained network and every classical benchmark, walked forward over the same days
    assert res.strategies == ["net_dense", *default_benchmarks()]
    assert set(PORTFOLIOS.names()) - set(default_benchmarks()) == {"cardinality"}
    config = load_backtest_config(out / "config.yaml")
    train, val, test = split_windows(config, load_returns(config))
    assert res.turnover.index[0] == test.dates[0]
    rows = load_returns(config).index
    assert rows[rows.get_loc(val.dates[-1]) + config.data.horizon] < res.turnover.index[0]  # out of sample
    weights = res.weights["net_dense"].to_numpy()
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-5)
    assert weights.min() >= 0 and weights.std(0).max() > 0  # softmax weights that move with the data
    assert (out / "checkpoints" / "trainer.pt").is_file()
    html = (out / "report.html").read_text()
    assert "net_dense" in html and "Network &#x27;dense&#x27; trained with the &#x27;sharpe&#x27; loss" in html
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["net_dense"]["total_cost"] == pytest.approx(0.001 * res.turnover["net_dense"].sum(), rel=1e-9)


NETWORK_ONLY = SMALL.replace('benchmarks = ["equal_weight", "inverse_volatility", "hrp"]', "benchmarks = []").replace(
    "[network]\nenabled = false", "[network]\nname = \"dense\"\nparams = {hidden = [16]}\n\n[train]\nepochs = 3"
)


@pytest.mark.parametrize("window", ["expanding", "rolling"])
def test_network_retraining_and_resume(tmp_path: Path, window: str) -> None:
    cfg = tmp_path / "net.toml"
    text = NETWORK_ONLY.replace(
        "cost_bps = 20", f'cost_bps = 20\nretrain_every = 40\nretrain_window = "{window}"\nretrain_size = 200\n'
        "retrain_epochs = 2"
    )
    cfg.write_text(text)
    config = load_backtest_config(cfg)
    fits: list[pd.Timestamp] = []
    progress_calls: list[str] = []

    def progress(task: str, done: int, total: int, info: str = "") -> None:
        progress_calls.append(task)
        if task.startswith("refit") and done == 1:
            fits.append(pd.Timestamp(task.split()[1]))

    folder, res = run_backtest(config, tmp_path / "run", progress)
    decisions = res.turnover.index
    expected = [decisions[p] for p in range(len(decisions)) if p > 0 and (p * 10) // 40 > ((p - 1) * 10) // 40]
    assert fits == expected and len(fits) >= 2
    assert "training" in progress_calls and "backtest net_dense" in progress_calls
    refits = sorted(p.name for p in (folder / "checkpoints").glob("refit-*") if (p / "trainer.pt").is_file())
    assert refits == [f"refit-{d.date()}" for d in fits]
    # rerun into the same folder with the same config: the training and every refit resume from
    # their checkpoints (nothing is trained again) and the result is the same
    progress_calls.clear()
    _, again = run_backtest(config, folder, progress)
    assert not [t for t in progress_calls if t == "training" or t.startswith("refit")]
    pd.testing.assert_frame_equal(again.returns, res.returns)
    # an interrupted run (the last refit's checkpoint missing) trains only that refit again
    shutil.rmtree(folder / "checkpoints" / refits[-1])
    progress_calls.clear()
    _, resumed = run_backtest(config, folder, progress)
    assert {t for t in progress_calls if t == "training" or t.startswith("refit")} == {f"refit {fits[-1].date()}"}
    pd.testing.assert_frame_equal(resumed.returns, res.returns)


def test_refit_windows_end_at_the_refit_date() -> None:
    config = BacktestConfig.model_validate({"data": {"lookback": 20, "gap": 1, "horizon": 5}, "split": {"val_frac": 0.2}})
    returns = load_returns(config).iloc[:300]
    train, val = refit_windows(config, returns)
    rows = returns.index
    assert rows[rows.get_loc(val.dates[-1]) + 1 + 5] == rows[-1]  # the last target ends on the last row
    assert rows[rows.get_loc(train.dates[-1]) + 1 + 5] < val.dates[0]
    assert len(val) == round(0.2 * (300 - 20 - 1 - 5 + 1))


@pytest.mark.parametrize(
    ("update", "error", "match"),
    [
        ({"benchmarks": ["equal_weight", "max_fun"]}, ConfigError, r"^benchmarks\[1\]: unknown portfolio 'max_fun'; choose one of"),
        ({"benchmark_params": {"min_cvar": {"beta": 1.5}}}, ConfigError, r"^benchmark_params.min_cvar: .*beta=1.5"),
        ({"benchmark_params": {"hrp": {"colour": 1}}}, ConfigError, r"^benchmark_params.hrp.colour: Extra inputs are not permitted"),
        ({"network": {"name": "transformer"}}, ConfigError, r"^network.name: unknown network 'transformer'; choose one of"),
        ({"network": {"params": {"depth": 3}}}, ConfigError, r"^network.params.depth: Extra inputs are not permitted"),
        ({"network": {"loss": "sharp"}}, ConfigError, r"^network.loss: unknown loss 'sharp'; choose one of"),
        (
            {"backtest": {"retrain_every": 20, "retrain_window": "rolling", "retrain_size": 30}},
            DataError,
            r"sp500 \(retraining rows up to 2020-12-31\): 30 rows of returns",
        ),
        (
            {"backtest": {"retrain_every": 20, "retrain_window": "rolling", "retrain_size": 50}},
            DataError,
            r"backtest.retrain_size: retraining on 50 rows up to 2020-12-31 leaves 6 windows",
        ),
    ],
)
def test_bad_config_fails_before_training_or_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, update: dict, error: type, match: str
) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was trained before the config was checked")

    monkeypatch.setattr(runner, "train_network", no_training)
    base = {"data": {"start": "2019-01-01", "end": "2020-12-31", "lookback": 40, "horizon": 5}, "tracking": False}
    if error is ConfigError:  # a config file is refused as it is read, naming the file
        with pytest.raises(ConfigError, match="^run.yaml: " + match.lstrip("^")):
            parse_config(BacktestConfig, {**base, **update}, where="run.yaml")
    config = BacktestConfig.model_validate({**base, **update})  # built in Python: run_backtest checks it
    with pytest.raises(error, match=match):
        run_backtest(config, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()  # nothing written
    # a previous run's folder is left as it was: its config.yaml is not replaced by the bad one
    previous = parse_config(BacktestConfig, base)
    dump_config(previous, tmp_path / "old" / "config.yaml")
    with pytest.raises(error, match=match):
        run_backtest(config, tmp_path / "old")
    assert load_backtest_config(tmp_path / "old" / "config.yaml") == previous


def test_checkpoints_of_another_config_are_not_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "run"
    old = parse_config(BacktestConfig, {"seed": 1, "tracking": False})
    with RunFolder(folder, "backtest") as run_folder:  # a previous complete run of the old config
        dump_config(old, run_folder.stage / "config.yaml")
        run_folder.publish()
    dump_config(old, folder / "checkpoints" / "config.yaml")
    (folder / "checkpoints" / "refit-2020-01-02").mkdir(parents=True)
    (folder / "checkpoints" / "trainer.pt").write_bytes(b"a checkpoint of the old config")
    seen: list[bool] = []

    def interrupted(*args: object, resume: bool, **kwargs: object) -> None:
        seen.append(resume)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "train_network", interrupted)
    new = old.model_copy(update={"seed": 2})
    with pytest.raises(KeyboardInterrupt):
        run_backtest(new, folder)
    # the new config is recorded with the checkpoints and the old checkpoints are gone, so a rerun
    # of the new config (which resumes) cannot pick them up; the previous complete run is left as it was
    assert seen == [False]
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["config.yaml"]
    assert load_backtest_config(folder / "checkpoints" / "config.yaml") == new
    assert load_backtest_config(folder / "config.yaml") == old
    with pytest.raises(KeyboardInterrupt):
        run_backtest(new, folder)
    assert seen == [False, True]


def test_report_states_the_annualization_of_the_result() -> None:
    returns = load_returns(parse_config(BacktestConfig, {"data": {"assets": ["AAPL", "KO"], "start": "2019-01-01"}}))
    weekly = (1.0 + returns).resample("W").prod() - 1.0
    result = walk_forward({"ew": EqualWeight()}, weekly, lookback=10, periods_per_year=52)
    page = report_html(result)
    assert "Annualized with 52 periods per year" in page and "Annualized with 252" not in page
