"""`gradfolio hedge baselines`: table, run folder, and one clear line on a bad config."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from gradfolio.cli import app

runner = CliRunner()

CONFIG = """
env:
  n_days: 5
  market: {nu: 0.5}
evaluation:
  n_paths: 300
  seed: 3
"""


def test_hedge_baselines_writes_report(tmp_path: Path) -> None:
    cfg = tmp_path / "hedge.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    result = runner.invoke(app, ["hedge", "baselines", "--config", str(cfg), "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "delta_gamma" in result.output and "cvar_95" in result.output
    for name in ("config.yaml", "metrics.json", "metrics.md", "pnl.parquet", "pnl_hist.png", "report.html"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"delta", "delta_gamma", "delta_vega"}
    pnl = pd.read_parquet(out / "pnl.parquet")
    assert pnl.shape == (300, 3)
    assert metrics["delta"]["mean"] == __import__("pytest").approx(pnl["delta"].mean(), rel=1e-9)
    assert "plotly" in (out / "report.html").read_text()
    assert "nu: 0.5" in (out / "config.yaml").read_text()


def test_hedge_baselines_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("env:\n  market: {rho: 1.5}\n")
    result = runner.invoke(app, ["hedge", "baselines", "--config", str(cfg), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "env.market.rho" in result.output and "Traceback" not in result.output


def test_hedge_baselines_device_override_is_checked(tmp_path: Path) -> None:
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = runner.invoke(app, ["hedge", "baselines", "--device", "cuda", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "CUDA is not available" in result.output
