"""``gradfolio hedge ...``: the hedging market and its classical baselines.

:func:`register` adds the ``hedge`` group with ``baselines`` and returns it;
:mod:`gradfolio.cli.main` passes that group to ``cli/hedge_agent.py``'s ``register``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.table import Table

from gradfolio.cli.app import console, friendly_errors


@friendly_errors
def baselines(
    config: Path = typer.Option(None, "--config", help="YAML/TOML HedgingConfig; defaults reproduce the paper."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: output_dir of the config)."),
    device: str = typer.Option(None, "--device", help="Override evaluation.device (cpu, cuda)."),
    track: bool = typer.Option(False, "--track/--no-track", help="Also log the run to MLflow."),
) -> None:
    """Evaluate delta, delta-gamma and delta-vega hedging; print the P&L table and write a report."""
    from gradfolio.experiments.hedging.baselines import run_baselines
    from gradfolio.experiments.hedging.config import load_hedging_config
    from gradfolio.tracking import MlflowTracker, NullTracker

    cfg = load_hedging_config(config)
    if device is not None:
        cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"device": device})})
    with MlflowTracker("gradfolio-hedge", run_name="baselines") if track else NullTracker() as tracker:
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


def register(app: typer.Typer) -> typer.Typer:
    """Add the ``hedge`` group (``hedge baselines``) to ``app``; returns the group for more commands."""
    hedge_app = typer.Typer(help="Gamma/vega hedging on a SABR market: baselines and RL agents.", no_args_is_help=True)
    hedge_app.command("baselines")(baselines)
    app.add_typer(hedge_app, name="hedge")
    return hedge_app
