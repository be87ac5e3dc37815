"""``gradfolio hedge train | evaluate | sweep | deep``: the distributional RL hedging agents (GVDH, ANADDH, Cao et al.'s)
and deep hedging through the simulator.

Every option that changes a config field goes through the same validation as a config file
(:func:`gradfolio.experiments.hedging.sweep.apply_overrides`), one option at a time, so a bad value ends
in one line naming the option, the field and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.table import Table

from gradfolio.cli.app import console, friendly_errors, parse_seeds
from gradfolio.cli.progress import progress_bars
from gradfolio.errors import ConfigError

if TYPE_CHECKING:  # pandas and pydantic load with the commands, not with `gradfolio --help`
    import pandas as pd
    from pydantic import BaseModel

C = TypeVar("C", bound="BaseModel")


def _print_table(table: pd.DataFrame, title: str) -> None:
    view = Table(title=title)
    view.add_column(table.index.name or "strategy")
    for col in table.columns:
        view.add_column(str(col), justify="right")
    for name, row in table.iterrows():
        view.add_row(str(name), *(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    console.print(view)


def _with_options(config: C, options: dict[str, tuple[str, Any]]) -> C:
    """``config`` with ``{option: (dotted.field, value)}`` applied, skipping ``None`` values.

    Each option is validated on its own, so an error names it, e.g.
    ``option --optimizer: field 'agent.optimizer': Input should be 'adam' or 'ana' (got 'sgd')``.
    """
    from gradfolio.experiments.hedging.sweep import apply_overrides

    for option, (field, value) in options.items():
        if value is not None:
            config = apply_overrides(config, {field: value}, where=f"option {option}")
    return config


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
    seeds: str = typer.Option(None, "--seeds", help="Train one agent per seed, e.g. '0 1 2 3 4' (or 0,1,2): "
                              "mean and 95% t interval over seeds; each in <out>/seed_<s>."),
    test_episodes: int = typer.Option(None, "--test-episodes", help="Test episodes (seeds evaluation.seed ..)."),
    threads: int = typer.Option(None, "--threads", help="Torch intra-op threads of the training (default 1: "
                                "the agent does not depend on the machine's core count)."),
    serial: bool = typer.Option(False, "--serial", help="With --seeds: train the seeds one after the other in this "
                                "process (progress bars) instead of one Ray task each."),
    num_cpus: int = typer.Option(None, "--num-cpus", help="With --seeds: CPUs of the local Ray (default: all)."),
    address: str = typer.Option(None, "--address", help="With --seeds: Ray cluster address (default: a local Ray)."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Evaluate against the baselines after training."),
    track: bool = typer.Option(False, "--track/--no-track", help="Log the run to MLflow."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train a GVDH/ANADDH agent (checkpointed, resumable), then evaluate it against the baselines."""
    from gradfolio.experiments.hedging.train import evaluate_agent, load_training_config, train_agent
    from gradfolio.tracking import MlflowTracker, NullTracker

    cfg = _with_options(load_training_config(config), {
        "--optimizer": ("agent.optimizer", optimizer), "--objective": ("agent.objective", objective),
        "--episodes": ("trainer.n_episodes", episodes), "--paths": ("trainer.n_paths", paths),
        "--batch-size": ("trainer.batch_size", batch_size), "--device": ("trainer.device", device),
        "--dtype": ("trainer.dtype", dtype), "--seed": ("trainer.seed", seed),
        "--test-episodes": ("evaluation.n_episodes", test_episodes), "--threads": ("trainer.threads", threads),
    })
    if seeds is not None:
        ray_options = {"executor": "serial" if serial else "ray", "num_cpus": num_cpus, "address": address}
        _train_seeds(cfg, _parse_seeds(seeds, seed), out, resume, track, progress, ray_options)
        return
    if serial or num_cpus is not None or address is not None:
        raise ConfigError("--serial, --num-cpus and --address go with --seeds (one Ray task per seed).")
    with MlflowTracker("gradfolio-hedge", run_name=f"train-{cfg.agent_name}") if track else NullTracker() as tracker:
        with progress_bars(console, enabled=progress) as bars:
            agent, run_dir = train_agent(cfg, out, resume=resume, tracker=tracker, progress=bars)
        if evaluate:
            table, _ = evaluate_agent(agent, cfg, run_dir, tracker)
            ev = cfg.evaluation
            _print_table(table, f"Test P&L over {cfg.env.n_days} days, {ev.n_paths * ev.n_episodes} paths")
    console.print(f"run folder: {run_dir}")


def _parse_seeds(text: str, seed: int | None) -> list[int]:
    """``"0 1 2"`` / ``"0,1,2"`` -> ``[0, 1, 2]``; a ``ConfigError`` naming ``--seeds`` otherwise."""
    if seed is not None:
        raise ConfigError("--seed and --seeds: pass one (--seeds trains one agent per seed).")
    return parse_seeds(text)


def _train_seeds(cfg: Any, seeds: list[int], out: Path | None, resume: bool, track: bool, progress: bool,
                 ray_options: dict[str, Any]) -> None:
    from gradfolio.experiments.hedging.seeds import format_summary, train_seeds
    from gradfolio.tracking import MlflowTracker, NullTracker

    with MlflowTracker("gradfolio-hedge", run_name=f"seeds-{cfg.agent_name}") if track else NullTracker() as tracker:
        if ray_options["executor"] == "ray":
            console.print(f"training {len(seeds)} seeds as Ray tasks ({cfg.trainer.threads or 'all'} thread(s) each); "
                          "--serial shows progress bars")
        with progress_bars(console, enabled=progress and ray_options["executor"] == "serial") as bars:
            _, summary, root = train_seeds(cfg, seeds, out, resume=resume, tracker=tracker, progress=bars, **ray_options)
    view = format_summary(summary)
    view.index.name = "strategy"
    table = Table(title=f"Test P&L, mean ± 95% t interval over {len(seeds)} training seeds")
    for col in [view.index.name, *view.columns]:
        table.add_column(str(col), justify="left" if col == "strategy" else "right")
    for name, row in view.iterrows():
        table.add_row(str(name), *row.tolist())
    console.print(table)
    console.print(f"summary: {root / 'summary.md'}")


@friendly_errors
def evaluate(
    run: Path = typer.Option(..., "--run", help="Run folder written by 'gradfolio hedge train'."),
    paths: int = typer.Option(None, "--paths", help="Test paths (default: the run's evaluation.n_paths)."),
    seed: int = typer.Option(None, "--seed", help="Test seed (default: the run's evaluation.seed)."),
    device: str = typer.Option(None, "--device", help="cpu or cuda (default: the training device)."),
    out: Path = typer.Option(None, "--out", help="Report folder (default: the run folder)."),
    track: bool = typer.Option(False, "--track/--no-track", help="Log the test metrics and report to MLflow."),
) -> None:
    """Evaluate a trained agent and the baselines on the same test episodes; write the report."""
    from gradfolio.experiments.hedging.train import evaluate_agent, load_agent, run_params
    from gradfolio.tracking import MlflowTracker, NullTracker

    agent, cfg = load_agent(run, device)
    cfg = _with_options(cfg, {"--paths": ("evaluation.n_paths", paths), "--seed": ("evaluation.seed", seed),
                              "--device": ("evaluation.device", device)})
    with MlflowTracker("gradfolio-hedge", run_name=f"evaluate-{cfg.agent_name}") if track else NullTracker() as tracker:
        tracker.log_params({"run": str(run), **run_params(cfg)})
        table, _ = evaluate_agent(agent, cfg, out or run, tracker)
    _print_table(table, f"Test P&L over {cfg.env.n_days} days, {cfg.evaluation.n_paths * cfg.evaluation.n_episodes} paths")
    console.print(f"report: {(out or run) / 'report.html'}")


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
    seeds: str = typer.Option(None, "--seeds", help="Train every point once per seed, e.g. '0 1 2' (or 0,1,2): "
                              "mean and 95% t interval over seeds; each in <point>/seed_<s>."),
) -> None:
    """Train and evaluate GVDH and ANADDH over the paper's grids through Ray; write tables and figures."""
    from gradfolio.experiments.hedging.sweep import load_sweep_config, run_sweep

    cfg = load_sweep_config(config)
    if only:
        missing = sorted(set(only) - set(cfg.experiments))
        if missing:
            raise ConfigError(f"--only {', '.join(missing)}: no such experiment; choose from {', '.join(cfg.experiments)}.")
    cfg = _with_options(cfg, {
        "--episodes": ("base.trainer.n_episodes", episodes), "--device": ("base.trainer.device", device),
        "--address": ("address", address), "--num-cpus": ("num_cpus", num_cpus),
        "--serial": ("executor", "serial" if serial else None), "--gpus-per-point": ("gpus_per_point", gpus_per_point),
        "--only": ("experiments", {k: v for k, v in cfg.experiments.items() if k in only} if only else None),
        "--seeds": ("seeds", parse_seeds(seeds) if seeds is not None else None),
    })
    table, sweep_dir = run_sweep(cfg, out)
    if cfg.seeds is None:
        _print_table(table.set_index("strategy"), "Sweep results")
    else:
        from gradfolio.stats.seeds import format_summary

        keys = ["experiment", "setting", "strategy"]
        view = format_summary(table.set_index(keys).drop(columns="n_seeds")).reset_index(keys[:2])
        _print_table(view, f"Sweep results, mean ± 95% t interval over {len(cfg.seeds)} training seeds")
    console.print(f"results: {sweep_dir / 'results.md'}")


@friendly_errors
def deep(
    config: Path = typer.Option(None, "--config", help="YAML/TOML DeepHedgeRunConfig (env, deep, trainer, evaluation)."),
    out: Path = typer.Option(None, "--out", help="Run folder (default: output_dir of the config)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's checkpoint."),
    steps: int = typer.Option(None, "--steps", help="Gradient steps."),
    paths: int = typer.Option(None, "--paths", help="Paths per gradient step."),
    risk: str = typer.Option(None, "--risk", help="cvar | entropic | mean_std."),
    device: str = typer.Option(None, "--device", help="cpu or cuda."),
    seed: int = typer.Option(None, "--seed", help="Training seed."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Evaluate against the baselines after training."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Deep hedging: train a policy by backpropagating the P&L risk through the simulator, then evaluate it."""
    from gradfolio.experiments.config_io import load_config
    from gradfolio.experiments.hedging.deep import DeepHedgeRunConfig, evaluate_deep, train_deep

    cfg = DeepHedgeRunConfig() if config is None else load_config(DeepHedgeRunConfig, config)
    cfg = _with_options(cfg, {
        "--steps": ("trainer.n_steps", steps), "--paths": ("trainer.n_paths", paths), "--risk": ("deep.risk", risk),
        "--device": ("trainer.device", device), "--seed": ("trainer.seed", seed),
    })
    with progress_bars(console, enabled=progress) as bars:
        policy, run_dir = train_deep(cfg, out, resume=resume, progress=bars)
    if evaluate:
        table = evaluate_deep(policy, cfg, run_dir)
        ev = cfg.evaluation
        _print_table(table, f"Test P&L over {cfg.env.n_days} days, {ev.n_paths * ev.n_episodes} paths")
    console.print(f"run folder: {run_dir}")


def register(hedge_app: typer.Typer) -> None:
    """Add ``train``, ``evaluate``, ``sweep`` and ``deep`` to the ``hedge`` group (:func:`gradfolio.cli.hedge.register`)."""
    hedge_app.command("train")(train)
    hedge_app.command("evaluate")(evaluate)
    hedge_app.command("sweep")(sweep)
    hedge_app.command("deep")(deep)
