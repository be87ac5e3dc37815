"""Cross-validation of a backtest run: CPCV paths equal a direct recombination of the task results,
classical group returns equal a direct walk-forward, training windows are purged, a killed run
resumes without redoing finished tasks, walk-forward CV gives one path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gradfolio import risk
from gradfolio.allocation.classical import PORTFOLIOS
from gradfolio.backtest import ProportionalCost, walk_forward
from gradfolio.data.cv import CombinatorialPurgedCV, purge_embargo
from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest import cv as cvmod
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.backtest.cv import cv_plan, read_cv, split_windows_cv
from gradfolio.experiments.backtest.run import load_returns, run_backtest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = {
    "seed": 3, "benchmarks": ["equal_weight", "inverse_volatility"], "tracking": False, "seeds": [0, 1],
    "data": {"start": "2018-01-01", "end": "2020-12-31", "lookback": 20, "gap": 1, "horizon": 5, "step": 5,
             "assets": ["AAPL", "JPM", "KO", "XOM", "MSFT"]},
    "split": {"val_start": "2020-01-01", "test_start": "2020-06-01"},
    "backtest": {"rebalance_every": 10, "cost_bps": 20},
    "network": {"params": {"hidden": [8]}}, "train": {"epochs": 2, "patience": 2},
    "cv": {"n_folds": 4, "n_test_folds": 2, "executor": "serial"},
    "stats": {"n_resamples": 200, "n_multiple_resamples": 100},
}


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestConfig, Path]:
    torch.set_num_threads(1)
    config = BacktestConfig.model_validate(CFG)
    folder, _ = run_backtest(config, tmp_path_factory.mktemp("cv") / "run")
    return config, folder


def _task(folder: Path, *parts: str) -> dict:
    return json.loads((folder / "cv" / "tasks" / Path(*parts) / "result.json").read_text())["result"]


def test_cpcv_paths_equal_a_direct_recombination(cv_run: tuple[BacktestConfig, Path]) -> None:
    _, folder = cv_run
    data = json.loads((folder / "cv.json").read_text())
    cpcv = CombinatorialPurgedCV(4, 2, *purge_embargo(20, 1, 5, 1))
    assert (data["n_splits"], data["n_paths"], data["purge"], data["embargo"]) == (6, 3, 6, 19)
    assert data["seeds"] == [0, 1] and data["strategies"]["net_dense"]["seeds"] == [0, 1]
    paths = cpcv.paths()
    long = pd.read_parquet(folder / "cv_returns.parquet")
    for seed in (0, 1):
        for p in range(3):
            parts = []
            for g in range(4):
                piece = _task(folder, "net_dense", f"split-{paths[g, p]}", f"seed-{seed}")["groups"][str(g)]
                parts.append(pd.Series(piece["returns"], index=pd.DatetimeIndex(piece["dates"])))
            direct = pd.concat(parts)
            got = long[(long.strategy == "net_dense") & (long.seed == seed) & (long.path == p)]
            np.testing.assert_array_equal(got["return"].to_numpy(), direct.to_numpy())
            assert list(got["date"]) == list(direct.index)
            expected = float(risk.sharpe_ratio(torch.tensor(direct.to_numpy())))
            assert data["strategies"]["net_dense"]["sharpe"][seed][p] == pytest.approx(expected, rel=1e-12)
    # paths differ by the splits' networks; the seeds train different networks
    net = np.array(data["strategies"]["net_dense"]["sharpe"])
    assert net.shape == (2, 3) and np.unique(net).size == 6
    assert data["strategies"]["net_dense"]["mean"] == pytest.approx(net.mean())
    assert data["strategies"]["net_dense"]["std"] == pytest.approx(net.std(ddof=1))
    assert data["strategies"]["net_dense"]["per_seed_mean"] == pytest.approx(net.mean(axis=1).tolist())
    table = read_cv(folder)
    assert len(table) == 6 + 3 + 3 and (folder / "cv_sharpe.png").is_file()
    html = (folder / "report.html").read_text()
    assert "cv-sharpe" in html and "Cross-validated out-of-sample Sharpe" in html


def test_classical_groups_equal_a_direct_walk_forward(cv_run: tuple[BacktestConfig, Path]) -> None:
    config, folder = cv_run
    returns = load_returns(config)
    plan = cv_plan(config, len(returns))
    g = 2
    rows = np.flatnonzero(plan.group == g) + 19
    start, end = returns.index[rows[0]], returns.index[rows[-1] + 2]  # holding ends gap + 1 days after
    res = walk_forward({"inverse_volatility": PORTFOLIOS.build("inverse_volatility", returns_kind="simple")},
                       returns, 20, gap=1, rebalance_every=10, cost=ProportionalCost(0.002), start=start, end=end,
                       dtype=torch.float64, infeasible="keep")
    piece = _task(folder, "inverse_volatility", f"group-{g}")["groups"][str(g)]
    np.testing.assert_allclose(piece["returns"], res.returns["inverse_volatility"].to_numpy(), rtol=0, atol=0)
    # the classical portfolio's paths are the same groups on every path: no spread
    s = json.loads((folder / "cv.json").read_text())["strategies"]["inverse_volatility"]
    assert s["seeds"] == [None] and len(set(s["sharpe"][0])) == 1 and s["std"] == 0.0


def test_training_windows_are_purged_from_the_test_groups(cv_run: tuple[BacktestConfig, Path]) -> None:
    config, _ = cv_run
    returns = load_returns(config)
    plan = cv_plan(config, len(returns))
    pos = {d: i for i, d in enumerate(returns.index)}
    for s, groups in enumerate(plan.test_groups):
        train, val = split_windows_cv(config, returns, plan, s)
        test_days = set()
        for g in groups:
            rows = np.flatnonzero(plan.group == g) + 19
            test_days |= set(range(int(rows[0]) + 2, min(len(returns), int(rows[-1]) + 3)))  # holding days
        for w in (train, val):
            for d in w.dates:
                seen = set(range(pos[d] - 19, pos[d] + 1))
                label = set(range(pos[d] + 2, pos[d] + 7))
                assert not (label & test_days) and not (seen & test_days), (s, d)
        assert val.dates[0] > train.dates[-1]


def test_a_killed_cv_resumes_without_redoing_finished_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {**CFG, "seeds": [5], "benchmarks": ["equal_weight"], "cv": {**CFG["cv"], "n_test_folds": 2}}
    config = BacktestConfig.model_validate(cfg)
    real = cvmod.cv_task
    calls: list[str] = []

    def killed_at_fifth(job: dict, folder: str) -> dict:
        calls.append(folder)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(job, folder)

    monkeypatch.setattr(cvmod, "cv_task", killed_at_fifth)
    with pytest.raises(KeyboardInterrupt):
        run_backtest(config, tmp_path / "run")
    assert len(calls) == 5
    done = sorted(str(p.parent) for p in (tmp_path / "run" / "cv" / "tasks").rglob("result.json"))
    assert len(done) == 4
    calls.clear()

    def counted(job: dict, folder: str) -> dict:
        calls.append(folder)
        return real(job, folder)

    monkeypatch.setattr(cvmod, "cv_task", counted)
    folder, _ = run_backtest(config, tmp_path / "run")
    assert len(calls) == 6 + 4 - 4  # 6 network splits + 4 groups of equal_weight, 4 were finished
    assert not set(calls) & set(done)
    # the same numbers as an uninterrupted run
    fresh, _ = run_backtest(config, tmp_path / "fresh")
    pd.testing.assert_frame_equal(read_cv(folder), read_cv(fresh))
    # a changed config reruns every task
    calls.clear()
    run_backtest(config.model_copy(update={"seeds": [6]}), tmp_path / "run")
    assert len(calls) == 6  # the network's; equal_weight's groups do not depend on the seeds


def test_walk_forward_cv_gives_one_path(tmp_path: Path) -> None:
    cfg = {**CFG, "seeds": None, "benchmarks": ["equal_weight"], "cv": {"method": "walk_forward", "n_folds": 4,
                                                                      "executor": "serial"}}
    config = BacktestConfig.model_validate(cfg)
    returns = load_returns(config)
    plan = cv_plan(config, len(returns))
    assert plan.test_groups == [[1], [2], [3]] and plan.paths == [[(1, 0), (2, 1), (3, 2)]]
    for s, (g,) in enumerate(plan.test_groups):  # trained on the groups before, less the purge
        first = int(np.flatnonzero(plan.group == g)[0])
        assert np.flatnonzero(plan.train[s]).max() == first - plan.purge - 1
    folder, _ = run_backtest(config, tmp_path / "run")
    data = json.loads((folder / "cv.json").read_text())
    assert data["n_paths"] == 1 and data["seeds"] == [3]
    assert len(data["strategies"]["net_dense"]["sharpe"][0]) == 1


def test_cv_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="n_test_folds"):
        BacktestConfig.model_validate({**CFG, "cv": {"n_folds": 4, "n_test_folds": 1}})
    with pytest.raises(ConfigError, match="repeats a seed"):
        run_backtest(BacktestConfig.model_validate({**CFG, "seeds": [1, 1]}), "/nonexistent/never")


def test_backtest_command_runs_the_cv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml
    from typer.testing import CliRunner

    from gradfolio.cli import app
    from gradfolio.cli.app import console

    monkeypatch.setattr(console, "_width", 200)
    cfg = {**CFG, "network": {"enabled": False}, "seeds": None, "benchmarks": ["equal_weight", "hrp"],
           "cv": {"n_folds": 3, "n_test_folds": 2, "executor": "serial"}}
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["backtest", "--config", str(path), "--out", str(tmp_path / "run"),
                                      "--num-cpus", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "run" / "cv.json").read_text())
    assert data["n_splits"] == 3 and data["n_paths"] == 2
    assert "cpcv: out-of-sample Sharpe per path" in result.output
    assert f"{data['strategies']['hrp']['mean']:.3f}" in result.output
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["cv"]["num_cpus"] == 1


def test_where_the_cv_runs_does_not_discard_checkpoints(cv_run: tuple[BacktestConfig, Path]) -> None:
    from gradfolio.experiments.backtest.run import _resumable

    config, folder = cv_run
    assert config.cv is not None
    moved = config.model_copy(update={"cv": config.cv.model_copy(update={"executor": "ray", "num_cpus": 7,
                                                                          "address": "ray://elsewhere:10001"})})
    assert _resumable(folder, config) and _resumable(folder, moved)
    other = config.model_copy(update={"cv": config.cv.model_copy(update={"n_folds": 5})})
    assert not _resumable(folder, other)
