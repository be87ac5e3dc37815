"""The backtest report renders with data in a real headless browser (Chromium), offline."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gradfolio.backtest import BacktestResult, walk_forward
from gradfolio.experiments.backtest.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BacktestResult]:
    rng = np.random.default_rng(7)
    R = pd.DataFrame(
        rng.normal(0.0005, 0.012, size=(260, 5)),
        index=pd.bdate_range("2020-01-01", periods=260, name="date"),
        columns=["AAA", "BBB", "CCC", "DDD", "EEE"],
    )

    def ew(X: torch.Tensor) -> torch.Tensor:
        return torch.full((X.shape[0], 5), 0.2, dtype=X.dtype)

    def momentum(X: torch.Tensor) -> torch.Tensor:
        return torch.softmax(40 * X[:, 0].sum(1), -1)

    result = walk_forward({"equal": ew, "momentum": momentum}, R, 20, rebalance_every=5, cost=0.001)
    folder = tmp_path_factory.mktemp("report")
    return write_report(result, folder, title="Browser check"), result


def test_report_files_are_self_contained(report: tuple[Path, BacktestResult]) -> None:
    path, _ = report
    folder = path.parent
    for name in ("equity.png", "drawdowns.png", "turnover.png", "weights.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = path.read_text()
    assert not re.search(r"<script[^>]+src=", text), "plotly.js must be inlined, not fetched"
    assert "Plotly.newPlot" in text
    assert not list(folder.glob(".*.tmp")), "no temporary files left behind"


@pytest.mark.browser
def test_report_renders_in_headless_chromium(report: tuple[Path, BacktestResult], tmp_path: Path) -> None:
    if CHROMIUM is None:
        message = "chromium is not installed (make browser, or apt-get install chromium)"
        if os.environ.get("GRADFOLIO_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; GRADFOLIO_REQUIRE_BROWSER=1 requires the browser check")
        pytest.skip(message)
    path, result = report
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000", "--dump-dom", path.resolve().as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True).stdout
    # plotly replaced each placeholder div by its rendered SVG: 3 line charts + one heatmap per strategy
    for div_id in ("equity", "drawdowns", "turnover", "weights-0", "weights-1"):
        block = re.search(rf'<div id="{div_id}"(.*?)</script>', dom, flags=re.S)
        assert block is not None and "main-svg" in block.group(1), f"plot {div_id} did not render"
    # line traces were drawn with data points (a path with many segments per strategy)
    traces = re.findall(r'class="js-line" d="M([^"]+)"', dom)
    assert len(traces) >= 3 * len(result.strategies)
    assert max(t.count("L") for t in traces) > 100
    # each weight heatmap was painted as an image inside its plot
    heatmaps = re.findall(r'<g class="hm"><image[^>]+xlink:href="data:image/png;base64,([^"]+)"', dom)
    assert len(heatmaps) == len(result.strategies)
    assert all(base64.b64decode(h)[:8] == b"\x89PNG\r\n\x1a\n" for h in heatmaps)
    # the metrics table carries the computed values
    table = re.search(r"<table id=\"metrics\">(.*?)</table>", dom, flags=re.S)
    assert table is not None
    metrics = result.metrics()
    for name in result.strategies:
        assert f"<th>{name}</th>" in table.group(1)
        assert f"{metrics.loc[name, 'sharpe_ratio']:.3f}" in table.group(1)
        assert f"{100 * metrics.loc[name, 'max_drawdown']:.2f}%" in table.group(1)
