"""Fault injection through the command line: every bad file, config or --out is exit code 2, one line,
no traceback, and nothing changed on disk; two writers at once; a kill at a random point of a run
leaves the previous run intact and a rerun resumes."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from gradfolio.cli import app
from gradfolio.data import load_prices
from gradfolio.experiments.backtest.config import load_backtest_config
from gradfolio.experiments.backtest.run import run_backtest
from gradfolio.experiments.config_io import dump_config
from gradfolio.experiments.run_folder import LOCK, MARKER, RunFolder

SMALL = """
seed: 3
benchmarks: [equal_weight, inverse_volatility]
tracking: false
data:
  start: 2019-06-01
  end: 2020-12-31
  lookback: 30
  horizon: 5
  assets: [AAPL, JPM, KO, XOM]
split: {val_start: 2020-01-01, test_start: 2020-06-01}
backtest: {rebalance_every: 10, cost_bps: 20}
network: {enabled: false}
"""


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), lock files left out."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK}


def one_line_error(args: list[str]) -> str:
    """Run ``gradfolio *args``; assert exit code 2, one output line starting 'error:', no traceback."""
    res = CliRunner().invoke(app, args)
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output and len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def _truncated_torch_file() -> bytes:
    buffer = io.BytesIO()
    torch.save({"config": {}, "agent": {"w": torch.arange(2000.0)}}, buffer)
    return buffer.getvalue()[:1500]


# (name, files to write in the case folder: path -> text/bytes, CLI args ({d} = case folder), message)
CORPUS = [
    ("one asset", {"c.yaml": SMALL.replace("[AAPL, JPM, KO, XOM]", "[AAPL]")},
     ["backtest", "--config", "{d}/c.yaml", "--out", "{d}/run"],
     "field 'data': Value error, assets: ['AAPL'] is one asset; a portfolio needs at least 2"),
    ("duplicate asset", {"c.yaml": SMALL.replace("[AAPL, JPM, KO, XOM]", "[AAPL, KO, AAPL]")},
     ["backtest", "--config", "{d}/c.yaml", "--out", "{d}/run"], "assets: ['AAPL'] listed twice"),
    ("one-column csv", {"c.yaml": SMALL.replace("  assets: [AAPL, JPM, KO, XOM]\n", "").replace(
        "tracking: false", "tracking: false\n").replace("data:\n", "data:\n  source: one.csv\n"),
        "one.csv": "date,A\n" + "".join(f"2019-{m:02d}-{d:02d},{100 + d}\n" for m in range(6, 13) for d in range(1, 29))},
     ["backtest", "--config", "{d}/c.yaml", "--out", "{d}/run"], "one.csv: found 1 asset column(s)"),
    ("costs above wealth", {"c.yaml": SMALL.replace("cost_bps: 20", "cost_bps: 9999")},
     ["backtest", "--config", "{d}/c.yaml", "--out", "{d}/run"], "field 'backtest.cost_bps': Input should be less than 5000"),
    ("missing data file", {"c.yaml": SMALL.replace("data:\n", "data:\n  source: nowhere.csv\n")},
     ["backtest", "--config", "{d}/c.yaml", "--out", "{d}/run"], "nowhere.csv"),
    ("gzip named csv", {"c.yaml": SMALL.replace("data:\n", "data:\n  source: p.csv\n"), "p.csv": gzip.compress(b"date,A,B\n")},
     ["backtest", "--config", "{d}/c.yaml", "--out", "{d}/run"], "p.csv"),
    ("unparsable yaml", {"c.yaml": "data: [unclosed\n"}, ["backtest", "--config", "{d}/c.yaml"], "cannot parse the file"),
    ("alias bomb", {"c.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{k}: &{k} [{', '.join(['*' + p] * 10)}]\n" for p, k in zip("abcdefg", "bcdefgh"))},
     ["backtest", "--config", "{d}/c.yaml"], "alias"),
    ("out is a file", {"c.yaml": SMALL, "taken": "my notes"},
     ["backtest", "--config", "{d}/c.yaml", "--out", "{d}/taken"], "taken: is a file, not a folder"),
    ("out under a file", {"c.yaml": SMALL, "taken": "my notes"},
     ["backtest", "--config", "{d}/c.yaml", "--out", "{d}/taken/run"], "taken is a file, not a folder"),
    ("out not writable", {"c.yaml": SMALL}, ["backtest", "--config", "{d}/c.yaml", "--out", "/sys/gradfolio-run"],
     "/sys/gradfolio-run: cannot write there (Operation not permitted)"),
    ("out is a project folder", {"c.yaml": SMALL, "proj/config.yaml": "# my commented config\nseed: 1\n",
                                 "proj/checkpoints/model.pt": b"my own weights"},
     ["backtest", "--config", "{d}/c.yaml", "--out", "{d}/proj"],
     "proj: folder is not empty (checkpoints, config.yaml) and was not created by gradfolio"),
    ("out is a hedge run", {"c.yaml": SMALL, "h/.gradfolio-run": '{"kind": "hedge", "state": "complete", "files": []}'},
     ["backtest", "--config", "{d}/c.yaml", "--out", "{d}/h"], "holds a gradfolio 'hedge' run, not a 'backtest' run"),
    ("hedge out is a project folder", {"notes.txt": "mine"}, ["hedge", "baselines", "--out", "{d}"],
     "folder is not empty (notes.txt) and was not created by gradfolio"),
    ("truncated agent.pt", {"run/agent.pt": _truncated_torch_file()}, ["hedge", "evaluate", "--run", "{d}/run"], "agent.pt"),
]


@pytest.mark.parametrize(("name", "files", "args", "message"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_inputs_are_one_line_and_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, str | bytes], args: list[str], message: str
) -> None:
    case = tmp_path / "case"
    for path, content in files.items():
        target = case / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    case.mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path)  # relative data paths resolve against the config's folder, not here
    before = snapshot(tmp_path)
    line = one_line_error([a.replace("{d}", str(case)) for a in args])
    assert message in line
    assert snapshot(tmp_path) == before


def test_truncated_hedge_checkpoint_on_resume_is_one_line(tmp_path: Path, tiny_hedge) -> None:
    dump_config(tiny_hedge.run, tmp_path / "cfg.yaml")
    out = tmp_path / "run"
    with RunFolder(out, "hedge"):
        pass
    (out / "checkpoint.pt").write_bytes(_truncated_torch_file())
    before = snapshot(tmp_path)
    line = one_line_error(["hedge", "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(out), "--resume"])
    assert "checkpoint.pt" in line
    assert snapshot(tmp_path) == before
    # resuming a run that does not exist creates nothing
    line = one_line_error(["hedge", "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "new"), "--resume"])
    assert "checkpoint.pt" in line and not (tmp_path / "new").exists()


def test_relative_data_source_resolves_against_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prices = load_prices("sp500")[["AAPL", "JPM", "KO", "XOM"]].loc["2019-06-01":"2020-12-31"]
    (tmp_path / "project" / "data").mkdir(parents=True)
    prices.to_csv(tmp_path / "project" / "data" / "p.csv")
    cfg = tmp_path / "project" / "c.yaml"
    cfg.write_text(SMALL.replace("data:\n", "data:\n  source: data/p.csv\n"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_backtest_config(cfg).data.source == str(tmp_path / "project" / "data" / "p.csv")
    res = CliRunner().invoke(app, ["backtest", "--config", str(cfg), "--out", "run"])
    assert res.exit_code == 0, res.output
    assert json.loads((elsewhere / "run" / "metrics.json").read_text()).keys() == {"equal_weight", "inverse_volatility"}
    monkeypatch.setenv("HOME", str(tmp_path / "project"))
    cfg.write_text(SMALL.replace("data:\n", "data:\n  source: ~/data/p.csv\n"))
    assert load_backtest_config(cfg).data.source == str(tmp_path / "project" / "data" / "p.csv")


def test_two_writers_at_once(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL)
    out = tmp_path / "run"
    assert CliRunner().invoke(app, ["backtest", "--config", str(cfg), "--out", str(out)]).exit_code == 0
    before = snapshot(tmp_path)
    with RunFolder(out, "backtest"):  # another run holds the folder
        line = one_line_error(["backtest", "--config", str(cfg), "--out", str(out)])
    assert "another gradfolio run is writing into this folder" in line
    assert snapshot(tmp_path) == before


NETWORK = SMALL.replace("benchmarks: [equal_weight, inverse_volatility]", "benchmarks: [equal_weight]").replace(
    "network: {enabled: false}",
    "network: {name: dense, params: {hidden: [8]}}\ntrain: {epochs: 3}",
).replace("cost_bps: 20}", "cost_bps: 20, retrain_every: 40, retrain_epochs: 2}")


class Killed(KeyboardInterrupt):
    """The kill injected by the progress callback."""


def test_a_kill_at_a_random_point_leaves_the_previous_run_and_a_rerun_resumes(tmp_path: Path) -> None:
    cfg = tmp_path / "net.yaml"
    cfg.write_text(NETWORK)
    config = load_backtest_config(cfg)
    out = tmp_path / "run"
    calls: list[str] = []
    _, first = run_backtest(config, out, lambda task, done, total, info="": calls.append(task))
    complete = {k: v for k, v in snapshot(out).items() if not k.startswith("checkpoints")}
    assert MARKER in complete and "metrics.json" in complete and "strategies/net_dense/weights.pt" in complete
    # other configs (other seeds) into the same folder, each killed at a random progress point
    # (during training, refits or the walk-forward): the previous complete run stays byte for byte
    rng = np.random.default_rng(7)
    for seed, point in zip((4, 5), rng.choice(len(calls), size=2, replace=False), strict=True):
        other = config.model_copy(update={"seed": seed})
        seen: list[str] = []

        def kill(task: str, done: int, total: int, info: str = "") -> None:
            seen.append(task)
            if len(seen) > point:
                raise Killed

        with pytest.raises(Killed):
            run_backtest(other, out, kill)
        assert {k: v for k, v in snapshot(out).items() if not k.startswith("checkpoints")} == complete
        assert not [p for p in out.iterdir() if p.name.startswith((".stage-", ".trash-"))]
    # a rerun of the last killed config resumes every training that had finished instead of repeating it
    again: list[str] = []
    _, result = run_backtest(other, out, lambda task, done, total, info="": again.append(task))
    trained = [t for t in again if t == "training" or t.startswith("refit")]
    assert len(trained) < len([t for t in calls if t == "training" or t.startswith("refit")])
    assert load_backtest_config(out / "config.yaml") == other
    fresh = run_backtest(other, tmp_path / "fresh")[1]
    pd.testing.assert_frame_equal(result.returns, fresh.returns)
    assert not result.returns.equals(first.returns)
