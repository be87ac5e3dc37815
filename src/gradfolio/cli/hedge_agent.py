"""``gradfolio hedge train | evaluate | sweep``: the distributional RL hedging agents (GVDH, ANADDH)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.table import Table

from gradfolio.cli.app import console, friendly_errors
from gradfolio.cli.hedge import hedge_app
from gradfolio.errors import ConfigError


def _print_table(table: pd.DataFrame, title: str) -> None:
    view = Table(title=title)
    view.add_column(table.index.name or "strategy")
    for col in table.columns:
        view.add_column(str(col), justify="right")
    for name, row in table.iterrows():
        view.add_row(str(name), *(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    console.print(view)


def _overrides(config: Any, **fields: Any) -> Any:
    """Copy of a training config with the given (non-None) trainer/agent overrides applied."""
    trainer = {k: v for k, v in fields.items() if k in {"n_episodes", "n_paths", "batch_size", "device", "dtype", "seed"} and v is not None}
    agent = {k: v for k, v in fields.items() if k in {"optimizer", "objective"} and v is not None}
    data = config.model_dump()
    data["trainer"].update(trainer)
    data["agent"].update(agent)
    return type(config).model_validate(data)


@hedge_app.command("train")
@friendly_errors
def train(
    config: Path = typer.Option(None, "--config", help="YAML/TOML HedgeTrainingConfig; defaults = the paper's setting."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: output_dir of the config)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's checkpoint."),
    optimizer: str = typer.Option(None, "--optimizer", help="'ana' (ANADDH) or 'adam' (GVDH)."),
    objective: str = typer.Option(None, "--objective", help="mean | mean_std | var | cvar."),
    episodes: int = typer.Option(None, "--episodes", help="Training episodes."),
    paths: int = typer.Option(None, "--paths", help="Paths simulated in parallel per training episode."),
    batch_size: int = typer.Option(None, "--batch-size", help="Transitions per gradient update."),
    device: str = typer.Option(None, "--device", help="cpu or cuda."),
    dtype: str = typer.Option(None, "--dtype", help="float32 or float64."),
    seed: int = typer.Option(None, "--seed", help="Training seed."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Evaluate against the baselines after training."),
    track: bool = typer.Option(False, "--track/--no-track", help="Log the run to MLflow."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train a GVDH/ANADDH agent (checkpointed, resumable), then evaluate it against the baselines."""
    from gradfolio.experiments.hedge_training import evaluate_agent, load_training_config, train_agent
    from gradfolio.tracking import NullTracker, Tracker

    cfg = _overrides(load_training_config(config), optimizer=optimizer, objective=objective, n_episodes=episodes,
                     n_paths=paths, batch_size=batch_size, device=device, dtype=dtype, seed=seed)
    with Tracker("gradfolio-hedge", run_name=f"train-{cfg.agent_name}") if track else NullTracker() as tracker:
        agent, run_dir = train_agent(cfg, out, resume=resume, tracker=tracker, progress=progress)
        if evaluate:
            table, _ = evaluate_agent(agent, cfg, run_dir, tracker)
            ev = cfg.evaluation
            _print_table(table, f"Test P&L over {cfg.env.n_days} days, {ev.n_paths * ev.n_episodes} paths")
    console.print(f"run folder: {run_dir}")


@hedge_app.command("evaluate")
@friendly_errors
def evaluate(
    run: Path = typer.Option(..., "--run", help="Run folder written by 'gradfolio hedge train'."),
    paths: int = typer.Option(None, "--paths", help="Test paths (default: the run's evaluation.n_paths)."),
    seed: int = typer.Option(None, "--seed", help="Test seed (default: the run's evaluation.seed)."),
    device: str = typer.Option(None, "--device", help="cpu or cuda (default: the training device)."),
    out: Path = typer.Option(None, "--out", help="Report folder (default: the run folder)."),
) -> None:
    """Evaluate a trained agent and the baselines on the same test episodes; write the report."""
    from gradfolio.experiments.hedge_training import evaluate_agent, load_agent

    agent, cfg = load_agent(run, device)
    ev = cfg.evaluation.model_dump()
    ev.update({k: v for k, v in {"n_paths": paths, "seed": seed, "device": device}.items() if v is not None})
    cfg = cfg.model_copy(update={"evaluation": type(cfg.evaluation).model_validate(ev)})
    table, _ = evaluate_agent(agent, cfg, out or run)
    _print_table(table, f"Test P&L over {cfg.env.n_days} days, {cfg.evaluation.n_paths * cfg.evaluation.n_episodes} paths")
    console.print(f"report: {(out or run) / 'report.html'}")


@hedge_app.command("sweep")
@friendly_errors
def sweep(
    config: Path = typer.Option(None, "--config", help="YAML/TOML SweepConfig; defaults = the paper's five experiments."),
    out: Path = typer.Option(None, "--out", help="Sweep folder (default: output_dir of the config)."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (default: a local Ray)."),
    num_cpus: int = typer.Option(None, "--num-cpus", help="CPUs of the local Ray (default: the config's)."),
    episodes: int = typer.Option(None, "--episodes", help="Override the training episodes of every point."),
    device: str = typer.Option(None, "--device", help="cpu or cuda for every point."),
    only: list[str] = typer.Option(None, "--only", help="Run only these experiments (repeatable)."),
    serial: bool = typer.Option(False, "--serial", help="Run the points one by one in this process (no Ray)."),
    gpus_per_point: float = typer.Option(None, "--gpus-per-point", help="GPUs reserved per point (e.g. 0.25)."),
) -> None:
    """Train and evaluate GVDH and ANADDH over the paper's grids through Ray; write tables and figures."""
    from gradfolio.experiments.sweeps import load_sweep_config, run_sweep

    cfg = load_sweep_config(config)
    update: dict[str, Any] = {"base": _overrides(cfg.base, n_episodes=episodes, device=device)}
    if address is not None:
        update["address"] = address
    if num_cpus is not None:
        update["num_cpus"] = num_cpus
    if serial:
        update["executor"] = "serial"
    if gpus_per_point is not None:
        update["gpus_per_point"] = gpus_per_point
    if only:
        missing = sorted(set(only) - set(cfg.experiments))
        if missing:
            raise ConfigError(f"--only {', '.join(missing)}: no such experiment; choose from {', '.join(cfg.experiments)}.")
        update["experiments"] = {k: v for k, v in cfg.experiments.items() if k in only}
    cfg = cfg.model_copy(update=update)
    table, sweep_dir = run_sweep(cfg, out)
    _print_table(table.set_index("strategy"), "Sweep results")
    console.print(f"results: {sweep_dir / 'results.md'}")
