"""gradfolio tune: objectives equal each trial's CV Sharpe ratios, the best trial's DSR equals a direct
deflation over every trial, a repeated search reads every task back, bad spaces fail before any trial."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest import cv as cvmod
from gradfolio.experiments.backtest.config import load_backtest_config
from gradfolio.experiments.backtest.tune import TuneConfig, run_tune
from gradfolio.stats import deflated_sharpe_ratio, sharpe_statistics

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = {
    "seed": 4, "tracking": False, "seeds": [0, 2], "benchmarks": ["equal_weight"],
    "data": {"start": "2018-06-01", "end": "2020-12-31", "lookback": 20, "horizon": 5, "step": 5,
             "assets": ["AAPL", "JPM", "KO", "XOM", "MSFT"]},
    "backtest": {"rebalance_every": 10, "cost_bps": 20},
    "network": {"params": {"hidden": [8]}}, "train": {"epochs": 2, "patience": 2},
    "cv": {"n_folds": 3, "n_test_folds": 2, "executor": "serial"},
}
TUNE = {"base": BASE, "space": {"lr": [1e-3, 1e-1], "loss": ["sharpe", "sortino"]}, "n_trials": 3,
        "sampler": "random", "seed": 1}


def test_tune_objectives_and_deflated_sharpe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = TuneConfig.model_validate(TUNE)
    trials, folder = run_tune(config, tmp_path / "tune")
    data = json.loads((folder / "tune.json").read_text())
    assert len(trials) == 3 and data["n_trials"] == 3
    series = {}
    for i, row in trials.iterrows():
        cv = json.loads((folder / "trials" / f"trial-{i}" / "cv.json").read_text())
        sharpe = np.array(cv["strategies"]["net"]["sharpe"])  # 2 seeds x 2 paths
        assert sharpe.shape == (2, 2) and row["objective"] == pytest.approx(sharpe.mean(), rel=1e-12)
        assert 1e-3 <= row["lr"] <= 1e-1 and row["loss"] in ("sharpe", "sortino")
        long = pd.read_parquet(folder / "trials" / f"trial-{i}" / "cv_returns.parquet")
        series[i] = long.pivot_table(index="date", columns=["seed", "path"], values="return").mean(axis=1)
    assert len({round(v, 12) for v in trials["lr"]}) == 3  # three different draws
    st = sharpe_statistics(pd.DataFrame(series))
    best = int(trials["objective"].idxmax())
    var = float(st["sharpe"].var(ddof=1))
    b = st.iloc[best]
    expected = deflated_sharpe_ratio(b["sharpe"], b["n_obs"], 3, var, b["skew"], b["kurtosis"])
    assert data["best"]["trial"] == best and data["best"]["dsr"] == pytest.approx(float(expected), rel=1e-12)
    assert data["trial_sharpe_var"] == pytest.approx(var, rel=1e-12)
    best_cfg = load_backtest_config(folder / "best.yaml")
    assert best_cfg.train.lr == pytest.approx(trials.loc[best, "lr"]) and best_cfg.network.loss == trials.loc[best, "loss"]
    assert best_cfg.benchmarks == ["equal_weight"] and best_cfg.cv is not None
    # the same search again: the seeded sampler proposes the same trials, every task is read back
    calls: list[str] = []
    real = cvmod.cv_task
    monkeypatch.setattr(cvmod, "cv_task", lambda job, f: calls.append(f) or real(job, f))
    again, _ = run_tune(config, tmp_path / "tune")
    assert calls == []
    pd.testing.assert_frame_equal(again, trials)


def test_tune_checks_the_space_first(tmp_path: Path) -> None:
    bad = TuneConfig.model_validate({**TUNE, "space": {"loss": ["sharpe", "nope"]}})
    with pytest.raises(ConfigError, match="loss 'nope'"):
        run_tune(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="base.cv is required"):
        TuneConfig.model_validate({**TUNE, "base": {**BASE, "cv": None}})
    with pytest.raises(ValueError, match="n_trials"):
        TuneConfig.model_validate({**TUNE, "n_trials": 1})


def test_tune_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gradfolio.cli import app
    from gradfolio.cli.app import console

    monkeypatch.setattr(console, "_width", 200)
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump({**TUNE, "space": {"lr": [1e-3, 1e-2]}, "base": {**BASE, "seeds": [0]}}))
    result = CliRunner().invoke(app, ["tune", "--config", str(path), "--out", str(tmp_path / "t"), "--n-trials", "2"])
    assert result.exit_code == 0, result.output
    best = json.loads((tmp_path / "t" / "tune.json").read_text())["best"]
    assert f"DSR {best['dsr']:.3f} (deflated for 2 trials)" in result.output


def test_example_tune_config_parses() -> None:
    from gradfolio.experiments.backtest.tune import load_tune_config

    cfg = load_tune_config(Path(__file__).resolve().parents[3] / "examples" / "tune.yaml")
    cfg.check()
    assert cfg.n_trials == 12 and cfg.space.network == ["dense", "conv"]
    assert cfg.trial_config({"network": "conv", "loss": "cvar", "lr": 0.002}).network.params == {}
    assert cfg.trial_config({"network": "dense"}).network.params == {"hidden": [32]}


def test_trials_cross_validate_the_network_alone() -> None:
    """A base config with agents and benchmarks: each trial's CV config holds only the network (the objective is
    the network's mean CPCV Sharpe ratio, not one averaged with agents)."""
    from gradfolio.experiments.backtest.config import AgentSettings
    from gradfolio.experiments.backtest.tune import load_tune_config

    cfg = load_tune_config(Path(__file__).resolve().parents[3] / "examples" / "tune.yaml")
    base = cfg.base.model_copy(update={"agents": [AgentSettings(algo="a2c", timesteps=8)], "benchmarks": ["hrp"]})
    trial = cfg.model_copy(update={"base": base}).trial_config({"network": "dense"})
    assert trial.agents == [] and trial.benchmarks == [] and trial.network.enabled
