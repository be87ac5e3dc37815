"""``gradfolio tune --config FILE``: lr / loss / network search on the CPCV objective, deflated for every trial."""

from __future__ import annotations

from pathlib import Path

import typer
from rich import box
from rich.table import Table

from gradfolio.cli.app import console, friendly_errors


@friendly_errors
def tune(
    config: Path = typer.Option(..., "--config", help="YAML/TOML TuneConfig: base (with cv), space, n_trials."),
    out: Path = typer.Option(None, "--out", help="Output folder (default: 'out' of the config)."),
    n_trials: int = typer.Option(None, "--n-trials", min=2, help="Override n_trials."),
    num_cpus: int = typer.Option(None, "--num-cpus", min=1, help="CPUs of the local Ray running the CV tasks."),
    address: str = typer.Option(None, "--address", help="Ray cluster address for the CV tasks."),
) -> None:
    """Search lr / loss / network on the mean out-of-sample CPCV Sharpe; report the best trial's deflated Sharpe."""
    import json

    from gradfolio.experiments.backtest.tune import load_tune_config, run_tune

    cfg = load_tune_config(config)
    if n_trials is not None:
        cfg = cfg.model_copy(update={"n_trials": n_trials})
    if (num_cpus is not None or address is not None) and cfg.base.cv is not None:
        cv = cfg.base.cv.model_copy(update={k: v for k, v in (("num_cpus", num_cpus), ("address", address))
                                            if v is not None})
        cfg = cfg.model_copy(update={"base": cfg.base.model_copy(update={"cv": cv})})
    trials, folder = run_tune(cfg, out)
    view = Table(title="Trials: mean out-of-sample Sharpe over the CV paths and seeds", box=box.SIMPLE, pad_edge=False)
    for col in trials.columns:
        view.add_column(str(col), justify="right")
    for _, row in trials.iterrows():
        view.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.to_list()))
    console.print(view)
    best = json.loads((folder / "tune.json").read_text())["best"]
    console.print(f"best: trial {best['trial']} {best['params']}: Sharpe {best['objective']:.3f}, "
                  f"PSR {best['psr']:.3f}, DSR {best['dsr']:.3f} (deflated for {cfg.n_trials} trials)")
    console.print(f"best config: {folder / 'best.yaml'}")


def register(app: typer.Typer) -> None:
    """Add ``tune`` to ``app``."""
    app.command("tune")(tune)
