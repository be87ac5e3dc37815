"""``gradfolio demo`` and ``gradfolio backtest --config FILE``: walk-forward backtests with a report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich import box
from rich.table import Table

from rich.markup import escape

from gradfolio.cli.app import console, err_console, friendly_errors, parse_seeds
from gradfolio.cli.progress import progress_bars

if TYPE_CHECKING:  # the experiments (torch, pandas) are imported inside the commands, so `gradfolio --help` stays fast
    import pandas as pd

    from gradfolio.experiments.backtest.config import BacktestConfig

SHOWN = {
    "annualized_return": "CAGR",
    "annualized_volatility": "vol",
    "sharpe_ratio": "Sharpe",
    "max_drawdown": "max DD",
    "annual_turnover": "turn/yr",
    "total_cost": "costs",
}


def versus(row: pd.Series) -> str:
    """``+0.123 [-0.100, 0.350] p=0.28`` (empty for the benchmark itself)."""
    if row["diff"] != row["diff"]:  # NaN (pandas is not imported at start-up)
        return "-"
    return f"{row['diff']:+.3f} [{row['diff_lower']:+.3f}, {row['diff_upper']:+.3f}] p={row['diff_pvalue']:.2f}"


def _run(config: BacktestConfig, out: Path | None) -> None:
    from gradfolio.experiments.backtest.cv import cv_summary, read_cv
    from gradfolio.experiments.backtest.evaluation import read_stats
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
    stats = read_stats(folder) if (folder / "stats.json").is_file() else None
    if stats is not None:
        level = 100 * stats.attrs["level"]
        view.add_column(f"vs 1/N [{level:g}% CI] p", justify="right")
    for name, row in table.sort_values("sharpe_ratio", ascending=False).iterrows():
        cells = [f"{row[c]:.3f}" for c in SHOWN]
        if stats is not None:
            cells.append(versus(stats.loc[str(name)]))
        view.add_row(str(name), *cells)
    console.print(view)
    if stats is not None:
        console.print(f"vs 1/N: Sharpe difference to {stats.attrs['benchmark']}, Ledoit-Wolf HAC interval and p-value "
                      f"(stats.md); DSR deflated for {stats.attrs['n_trials']} strategies.")
    if (folder / "cv.json").is_file() and config.cv is not None:
        summary = cv_summary(read_cv(folder))
        cv_view = Table(title=f"{config.cv.method}: out-of-sample Sharpe per path (and seed)", box=box.SIMPLE,
                        pad_edge=False)
        for col in ("strategy", "mean", "std", "min", "max", "n"):
            cv_view.add_column(col, justify="left" if col == "strategy" else "right")
        for name, row in summary.iterrows():
            cv_view.add_row(str(name), *(f"{row[c]:.3f}" for c in ("mean", "std", "min", "max")), f"{row['n']:.0f}")
        console.print(cv_view)
    for line in result.warnings():
        err_console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    console.print(f"report: {folder / 'report.html'}  ({time.perf_counter() - start:.0f} s)")


@friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Run folder."),
    quick: bool = typer.Option(False, "--quick", help="Shorter data and training (seconds; for tests)."),
    device: str = typer.Option(None, "--device", help="Override the device (cpu, cuda)."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log the run to MLflow (local sqlite:///mlflow.db)."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the PNG figures (the HTML report is always written)."),
) -> None:
    """Train a network on the bundled S&P 500 data and backtest it against every benchmark.

    The network is trained end to end with the Sharpe loss, walked forward out of sample against
    every classical portfolio with 10 bps costs, and the report is written to --out.
    """
    from gradfolio.experiments.backtest.config import demo_config

    config = demo_config(quick=quick, out=str(out))
    update: dict[str, object] = {"tracking": track, "figures": figures}
    if device is not None:
        update["device"] = device
    _run(config.model_copy(update=update), out)


@friendly_errors
def backtest(
    config: Path = typer.Option(..., "--config", help="YAML/TOML BacktestConfig (see examples/)."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: 'out' of the config)."),
    device: str = typer.Option(None, "--device", help="Override the device (cpu, cuda)."),
    track: bool = typer.Option(None, "--track/--no-track", help="Override 'tracking' (MLflow) of the config."),
    figures: bool = typer.Option(None, "--figures/--no-figures", help="Override 'figures' (PNG files) of the config."),
    num_cpus: int = typer.Option(None, "--num-cpus", min=1, help="CPUs of the local Ray running the CV tasks."),
    address: str = typer.Option(None, "--address", help="Ray cluster address for the CV tasks."),
    seeds: str = typer.Option(None, "--seeds", help="Run the whole backtest once per seed, e.g. '0 1 2': mean and "
                              "95% t interval over seeds (summary.md); each run in <out>/seed_<s>."),
) -> None:
    """Run the walk-forward backtest described by a config file and write the report.

    With a ``cv`` section every strategy is also cross-validated (CPCV or walk-forward, network
    trained per fold and seed), the tasks running on Ray (``--num-cpus``, ``--address``).
    """
    from gradfolio.experiments.backtest.config import load_backtest_config

    cfg = load_backtest_config(config)
    if (num_cpus is not None or address is not None) and cfg.cv is not None:
        cv_update = {k: v for k, v in (("num_cpus", num_cpus), ("address", address)) if v is not None}
        cfg = cfg.model_copy(update={"cv": cfg.cv.model_copy(update=cv_update)})
    update: dict[str, object] = {}
    if device is not None:
        update["device"] = device
    if track is not None:
        update["tracking"] = track
    if figures is not None:
        update["figures"] = figures
    if seeds is not None:
        _run_seeds(cfg.model_copy(update=update), parse_seeds(seeds), out)
        return
    _run(cfg.model_copy(update=update), out)


def _run_seeds(config: BacktestConfig, seeds: list[int], out: Path | None) -> None:
    from gradfolio.experiments.backtest.seeds import backtest_seeds
    from gradfolio.stats import format_summary

    start = time.perf_counter()
    with progress_bars(console) as progress:
        _, summary, diffs, root = backtest_seeds(config, seeds, out, progress=progress)
    shown = format_summary(summary)[["sharpe_ratio", "annualized_return", "max_drawdown", "annual_turnover"]]
    view = Table(title=f"Mean ± 95% t half-width over seeds {', '.join(map(str, seeds))}", box=box.SIMPLE, pad_edge=False)
    for col in ("strategy", *shown.columns):
        view.add_column(col, justify="left" if col == "strategy" else "right", no_wrap=col == "strategy")
    order = summary["sharpe_ratio"].sort_values(ascending=False).index
    for name in order:
        view.add_row(str(name), *shown.loc[name].tolist())
    console.print(view)
    sharpe = diffs[diffs["metric"] == "sharpe_ratio"] if len(diffs) else diffs
    if len(sharpe):
        better = sharpe[sharpe["significant"] & (sharpe["diff"] > 0)]["strategy"].tolist()
        console.print(f"Sharpe minus {config.stats.benchmark}, paired by seed: significantly higher for {better or 'none'} "
                      "(differences.csv).")
    console.print(f"summary: {root / 'summary.md'}  ({time.perf_counter() - start:.0f} s)")


@friendly_errors
def experiment(
    config: Path = typer.Option(..., "--config", help="YAML/TOML BacktestConfig with a list `networks: [...]`."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: 'out' of the config)."),
    device: str = typer.Option(None, "--device", help="Override the device (cpu, cuda)."),
    track: bool = typer.Option(None, "--track/--no-track", help="Override 'tracking' (MLflow) of the config."),
    figures: bool = typer.Option(None, "--figures/--no-figures", help="Override 'figures' (PNG files) of the config."),
    num_cpus: int = typer.Option(None, "--num-cpus", min=1, help="CPUs of the local Ray running the CV tasks."),
    address: str = typer.Option(None, "--address", help="Ray cluster address for the CV tasks."),
    seeds: str = typer.Option(None, "--seeds", help="Run the whole experiment once per seed, e.g. '0 1 2': mean and "
                              "95% t interval over seeds (summary.md); each run in <out>/seed_<s>."),
) -> None:
    """Several networks and losses (`networks: [...]`) against the benchmarks in one run.

    Every network is trained as it would be alone, all are walked forward with the benchmarks,
    compared with 1/N (the deflated Sharpe counts every strategy) and, with a `cv` section,
    cross-validated per split and seed.
    """
    backtest(config=config, out=out, device=device, track=track, figures=figures, num_cpus=num_cpus, address=address,
             seeds=seeds)


def register(app: typer.Typer) -> None:
    """Add ``demo``, ``backtest`` and ``experiment`` to ``app``."""
    app.command("demo")(demo)
    app.command("backtest")(backtest)
    app.command("experiment")(experiment)
