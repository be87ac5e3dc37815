"""``gradfolio hedge ...``: the hedging market and its classical baselines.

``hedge_app`` is the sub-application; other modules (e.g. ``cli/hedge_agent.py``) add their
commands to it with ``@hedge_app.command(...)``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.table import Table

from gradfolio.cli.app import app, console, friendly_errors
from gradfolio.experiments.hedging.config import load_hedging_config

hedge_app = typer.Typer(help="Gamma/vega hedging on a SABR market: baselines and RL agents.", no_args_is_help=True)
app.add_typer(hedge_app, name="hedge")


@hedge_app.command("baselines")
@friendly_errors
def baselines(
    config: Path = typer.Option(None, "--config", help="YAML/TOML HedgingConfig; defaults reproduce the paper."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: output_dir of the config)."),
    device: str = typer.Option(None, "--device", help="Override evaluation.device (cpu, cuda)."),
    track: bool = typer.Option(False, "--track/--no-track", help="Also log the run to MLflow."),
) -> None:
    """Evaluate delta, delta-gamma and delta-vega hedging; print the P&L table and write a report."""
    from gradfolio.experiments.hedging.baselines import run_baselines
    from gradfolio.tracking import NullTracker, Tracker

    cfg = load_hedging_config(config)
    if device is not None:
        cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"device": device})})
    with Tracker("gradfolio-hedge", run_name="baselines") if track else NullTracker() as tracker:
        table, run_dir = run_baselines(cfg, out, tracker)
    ev = cfg.evaluation
    view = Table(title=f"Total P&L over {cfg.env.n_days} days, {ev.n_paths * ev.n_episodes} paths", box=box.SIMPLE, pad_edge=False)
    view.add_column("strategy", no_wrap=True)
    for col in table.columns:
        view.add_column(col, justify="right")
    for name, row in table.iterrows():
        view.add_row(str(name), *(f"{v:.2f}" for v in row))
    console.print(view)
    console.print(f"report: {run_dir / 'report.html'}")
