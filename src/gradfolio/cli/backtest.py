"""``gradfolio demo`` and ``gradfolio backtest --config FILE``: walk-forward backtests with a report."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from rich.markup import escape

from gradfolio.cli.app import console, err_console, friendly_errors
from gradfolio.cli.progress import progress_bars
from gradfolio.experiments.backtest.config import BacktestConfig, demo_config, load_backtest_config

SHOWN = {
    "annualized_return": "CAGR",
    "annualized_volatility": "vol",
    "sharpe_ratio": "Sharpe",
    "max_drawdown": "max DD",
    "annual_turnover": "turn/yr",
    "total_cost": "costs",
}


def _run(config: BacktestConfig, out: Path | None) -> None:
    from gradfolio.experiments.backtest.run import run_backtest

    start = time.perf_counter()
    with progress_bars(console) as progress:
        folder, result = run_backtest(config, out, progress)
    table = result.metrics()
    view = Table(
        title=f"Out of sample {result.returns.index[0].date()} to {result.returns.index[-1].date()}, "
        f"rebalanced every {config.backtest.rebalance_every} days, {config.backtest.cost_bps:g} bps costs",
        box=box.SIMPLE,
        pad_edge=False,
    )
    view.add_column("strategy", no_wrap=True)
    for label in SHOWN.values():
        view.add_column(label, justify="right")
    for name, row in table.sort_values("sharpe_ratio", ascending=False).iterrows():
        view.add_row(str(name), *(f"{row[c]:.3f}" for c in SHOWN))
    console.print(view)
    for line in result.warnings():
        err_console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    console.print(f"report: {folder / 'report.html'}  ({time.perf_counter() - start:.0f} s)")


@friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run folder."),
    quick: bool = typer.Option(False, "--quick", help="Shorter data and training (seconds; for tests)."),
    device: str = typer.Option(None, "--device", help="Override the device (cpu, cuda)."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log the run to MLflow (local sqlite:///mlflow.db)."),
) -> None:
    """Train a network on the bundled S&P 500 data and backtest it against every benchmark.

    The network is trained end to end with the Sharpe loss, walked forward out of sample against
    every classical portfolio with 10 bps costs, and the report is written to --out.
    """
    config = demo_config(quick=quick, out=str(out))
    update: dict[str, object] = {"tracking": track}
    if device is not None:
        update["device"] = device
    _run(config.model_copy(update=update), out)


@friendly_errors
def backtest(
    config: Path = typer.Option(..., "--config", help="YAML/TOML BacktestConfig (see examples/)."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: 'out' of the config)."),
    device: str = typer.Option(None, "--device", help="Override the device (cpu, cuda)."),
    track: bool = typer.Option(None, "--track/--no-track", help="Override 'tracking' (MLflow) of the config."),
) -> None:
    """Run the walk-forward backtest described by a config file and write the report."""
    cfg = load_backtest_config(config)
    update: dict[str, object] = {}
    if device is not None:
        update["device"] = device
    if track is not None:
        update["tracking"] = track
    _run(cfg.model_copy(update=update), out)


def register(app: typer.Typer) -> None:
    """Add ``demo`` and ``backtest`` to ``app``."""
    app.command("demo")(demo)
    app.command("backtest")(backtest)
