"""The one rich adapter of the Progress protocol: one bar per task, the info beside it."""

from __future__ import annotations

import io

from rich.console import Console

from gradfolio.cli.progress import progress_bars
from gradfolio.progress import no_progress


def test_progress_bars_draw_one_bar_per_task_with_its_info() -> None:
    out = io.StringIO()
    console = Console(file=out, width=150, force_terminal=False)
    with progress_bars(console) as progress:
        progress("training", 1, 7, "upd 0")
        progress("training", 5, 7, "upd 40  critic_loss 1.234")
        progress("backtest ew", 3, 4)  # the three-argument form of library hooks
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    final = lines[-2:]  # the last render: one line per task
    assert final[0].startswith("training") and "5/7" in final[0] and final[0].rstrip().endswith("upd 40  critic_loss 1.234")
    assert final[1].startswith("backtest ew") and "3/4" in final[1]
    assert "upd 0" not in final[0]


def test_disabled_progress_draws_nothing() -> None:
    out = io.StringIO()
    with progress_bars(Console(file=out), enabled=False) as progress:
        progress("training", 1, 2, "x")
    assert progress is no_progress and out.getvalue() == ""
