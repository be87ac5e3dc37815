"""Run a whole walk-forward backtest from a :class:`BacktestConfig` into one run folder.

:func:`run_backtest` loads the prices, splits the rolling windows by time (train / validation /
test with a purge of ``gap + horizon`` days), trains the allocation network end to end on the
training part with early stopping on the validation part, then walks the network and every
requested classical benchmark forward over the test period with proportional costs. The run
folder holds::

    config.yaml        the config that produced the run
    metrics.json       strategy -> measure -> value (also metrics.md)
    returns.parquet    daily net returns (+ gross returns and costs) per strategy
    weights.parquet    weights before/after each rebalance (long format)
    turnover.parquet   turnover per rebalance and strategy
    stats.json         is it better than 1/N? per strategy: Sharpe with bootstrap CI, Sharpe difference to
                       equal_weight with Ledoit-Wolf CI and p-value, PSR, DSR (n_trials = strategies
                       evaluated), SPA, MCS (gradfolio.stats.compare; also stats.md, sharpe_ci.png)
    cv.json            with `cv`: the out-of-sample Sharpe ratio of every strategy on every CPCV
                       (or walk-forward) path and network seed, with mean and spread (also cv.md,
                       cv_returns.parquet, cv_sharpe.png; tasks checkpointed under cv/tasks/;
                       see gradfolio.experiments.backtest.cv)
    report.html        interactive report (self-contained) and PNG figures
    strategies/        one saved strategy bundle per strategy (strategies/<label>/strategy.json +
                       weights.pt): the network after the walk-forward, every agent's policy and every benchmark, for
                       gradfolio.load_strategy(run) and `gradfolio predict --run RUN`
    checkpoints/       the trainer's checkpoint (trainer.pt, every epoch) and one per walk-forward
                       refit (refit-<date>/trainer.pt), with config.yaml (the config they belong
                       to), agents/<label>/agent.pt for each reinforcement-learning agent of
                       `agents` (and agents/<label>/refit-<date>/agent.pt per refit); a rerun into the same folder with the same config resumes every
                       training from them instead of training again
    .gradfolio-run     the run marker and manifest (.gradfolio-run.lock: the writer's lock)

The folder is opened as a :class:`~gradfolio.experiments.run_folder.RunFolder`: a non-empty folder
that gradfolio did not create is refused, a second run into it is refused while this one holds
the lock, and the outputs are staged and published together at the end, so that a kill or an
error leaves the previous complete run as it was (only ``checkpoints/`` is written during the run).

Everything the config decides (data, split, benchmarks, network and loss, device, retraining
windows) is checked before anything is trained or written.

The same is logged to MLflow through :mod:`gradfolio.tracking` when ``config.tracking``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch

from gradfolio.allocation.strategy import (
    STRATEGIES_DIR,
    returns_fingerprint,
    save_strategy,
)
from gradfolio.backtest import (
    BacktestResult,
    ProportionalCost,
    Strategy,
    walk_forward,
)
from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest.agents import (
    agent_hooks,
    agent_label,
    check_agent_refits,
    train_agents,
)
from gradfolio.experiments.backtest.build import (
    benchmark_params,
    build_benchmarks,
    build_network,
    load_returns,
    network_params,
    retrain_schedule,
    split_windows,
    train_network,
)
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.backtest.constraints import (
    unconstrained_benchmarks,
)
from gradfolio.experiments.backtest.cv import check_cv_agents, cv_plan, run_cv, seeds_of
from gradfolio.experiments.backtest.evaluation import stats_table, write_stats
from gradfolio.experiments.backtest.report import write_report
from gradfolio.experiments.config_io import dump_config, flatten_params, load_config
from gradfolio.experiments.distributed import safe_slug
from gradfolio.experiments.run_folder import RunFolder, check_run_folder
from gradfolio.progress import Progress, prefixed
from gradfolio.seeding import resolve_device
from gradfolio.tracking import MlflowTracker, NullTracker


def save_strategies(
    folder: Path,
    config: BacktestConfig,
    strategies: Mapping[str, torch.nn.Module],
    network_label: str | Mapping[str, BacktestConfig] | None,
    returns: pd.DataFrame,
    agents: Mapping[str, tuple[object, str]] | None = None,
) -> Path:
    """Write one bundle per strategy into ``folder/strategies/<label>/`` (replacing the previous set at once).

    The network's bundle holds its weights after the walk-forward (the last refit's with
    ``retrain_every``), in ``config.dtype``; each benchmark's its parameters, in
    ``config.benchmark_dtype``; each agent of ``agents`` (``label -> (SB3Strategy, algo)``) its policy
    after the walk-forward (:func:`gradfolio.allocation.rl.policy.save_agent`). Every bundle carries
    the fingerprint of ``returns``.
    """
    if isinstance(network_label, str):
        networks: Mapping[str, BacktestConfig] = {network_label: config}
    else:
        networks = network_label or {}
    fingerprint = returns_fingerprint(returns)
    assets = [str(c) for c in returns.columns]
    params = benchmark_params(config, assets)
    target = folder / STRATEGIES_DIR
    tmp = Path(tempfile.mkdtemp(prefix=".strategies.", suffix=".tmp", dir=folder))
    d, b = config.data, config.backtest
    try:
        for label, model in strategies.items():
            is_network = label in networks
            save_strategy(
                tmp / label, model,
                kind="network" if is_network else "classical",
                name=networks[label].network.name if is_network else label,
                label=label,
                params=network_params(networks[label], assets) if is_network else params[label],
                assets=[str(c) for c in returns.columns],
                returns_kind=d.kind, lookback=d.lookback, gap=d.gap,
                dtype=config.dtype if is_network else config.benchmark_dtype,
                data_fingerprint=fingerprint,
                rebalance_every=b.rebalance_every, cost_bps=b.cost_bps,
            )
        if agents:
            from gradfolio.allocation.rl.policy import save_agent

            for label, (agent, algo) in agents.items():
                save_agent(tmp / label, agent, algo=algo, assets=assets, returns_kind=d.kind,  # type: ignore[arg-type]
                           lookback=d.lookback, gap=d.gap, label=label, data_fingerprint=fingerprint,
                           rebalance_every=b.rebalance_every, cost_bps=b.cost_bps)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


CHECKPOINTS = "checkpoints"
"""The run folder's work area: the trainer's checkpoints and ``config.yaml``, the config they belong to."""


def _resumable(folder: Path, config: BacktestConfig) -> bool:
    """Whether ``folder``'s checkpoints were written by the same config (they can be resumed)."""
    previous = folder / CHECKPOINTS / "config.yaml"

    def runtime_free(c: BacktestConfig) -> BacktestConfig:  # where CV tasks run decides no result
        if c.cv is None:
            return c
        return c.model_copy(update={"cv": c.cv.model_copy(update={"executor": "ray", "num_cpus": None,
                                                                   "address": None})})

    try:
        return previous.is_file() and runtime_free(load_config(BacktestConfig, previous)) == runtime_free(config)
    except ConfigError:  # written by another version: not the same run
        return False


def run_backtest(
    config: BacktestConfig, out: str | os.PathLike[str] | None = None, progress: Progress | None = None
) -> tuple[Path, BacktestResult]:
    """Run the backtest described by ``config`` and write the run folder.

    Parameters
    ----------
    config
        The run's settings.
    out
        Run folder (default ``config.out``).
    progress
        Optional :class:`gradfolio.progress.Progress` (training epochs as ``"training"`` /
        ``"refit <date>"``, backtest blocks as ``"backtest <strategy>"``).

    Returns
    -------
    (folder, result)
    """
    folder = Path(out if out is not None else config.out)
    # everything the config decides is checked before anything is trained or written
    config.check_references()
    resolve_device(config.device)
    dtype = getattr(torch, config.dtype)
    returns = load_returns(config)
    assets = [str(c) for c in returns.columns]
    if config.constraints is not None:  # tickers resolved and feasibility proven before any work
        config.constraints.spec(assets).compile(len(assets))
    train, val, test = split_windows(config, returns)
    benchmarks = build_benchmarks(config, assets)
    variants = config.network_configs()  # label -> config of that one network
    clash = sorted(set(variants) & set(benchmarks))
    if clash:
        raise ConfigError(f"network label {clash} is also a benchmark's name; give the network another 'label'.")
    clash = sorted({agent_label(a) for a in config.agents if a.enabled} & (set(variants) | set(benchmarks)))
    if clash:
        raise ConfigError(f"agent label {clash} is also a network's or benchmark's name; give the agent another 'label'.")
    networks = {label: build_network(cfg, train.X.shape[-1], assets) for label, cfg in variants.items()}
    for cfg in variants.values():
        network_params(cfg, assets)  # a bundle holds JSON parameters only: checked before training
    schedule = retrain_schedule(config, returns)
    if schedule is not None:  # a rolling retraining window must hold an agent's episodes
        check_agent_refits(config, returns)
    if config.cv is not None:  # the folds fit the data and the seeds are distinct
        cv_plan(config, len(returns))
        seeds_of(config)
        check_cv_agents(config, len(returns))  # every split holds a training episode of every agent
    check_run_folder(folder, "backtest")
    with RunFolder(folder, "backtest") as run_folder:
        folder = run_folder.path
        resume = _resumable(folder, config)
        if not resume:  # checkpoints of another config must not be resumed
            shutil.rmtree(folder / CHECKPOINTS, ignore_errors=True)
            dump_config(config, folder / CHECKPOINTS / "config.yaml")
        tracker = (
            MlflowTracker(config.experiment, run_name=folder.name, tracking_uri=config.tracking_uri)
            if config.tracking
            else NullTracker()
        )
        with tracker:
            tracker.log_params(flatten_params(config.model_dump(mode="json")))
            strategies: dict[str, Strategy] = {}
            hooks = {}
            summaries = []
            several = config.networks is not None
            for label, (model, loss) in networks.items():
                checkpoints = folder / CHECKPOINTS / safe_slug(label) if several else folder / CHECKPOINTS
                run = train_network(variants[label], model, loss, train, val, checkpoints, tracker, progress,
                                    resume=resume, task=f"training {label}" if several else "training")
                strategies[label] = run.model
                hooks[label] = run.refit
                summaries.append(run.summary)
            notes = " ".join(summaries)
            agents = train_agents(config, returns, test.dates[0], folder / CHECKPOINTS, resume) if config.agents else {}
            if agents:
                notes = (f"{notes} Agents {sorted(agents)}: Stable-Baselines3, trained on the returns up to "
                         f"{test.dates[0].date()}{', refitted with the networks' if schedule is not None else ''} "
                         "(gradfolio.allocation.rl).").strip()
                if schedule is not None:
                    hooks.update(agent_hooks(config, agents, folder / CHECKPOINTS, resume))
            strategies.update(agents)  # type: ignore[arg-type]
            strategies.update(benchmarks)
            if config.constraints is not None:
                loose = unconstrained_benchmarks(config)
                notes = (f"{notes} Constraints ({config.constraints.spec(assets).describe()}) apply to "
                         f"{[s for s in strategies if s not in loose]}"
                         f"{f'; unconstrained: {loose}' if loose else ''}.").strip()
            b = config.backtest
            result = walk_forward(
                strategies,
                returns,
                config.data.lookback,
                gap=config.data.gap,
                rebalance_every=b.rebalance_every,
                cost=ProportionalCost.from_bps(b.cost_bps),
                start=test.dates[0],
                kind=config.data.kind,
                retrain=schedule,
                fit_hooks=hooks if schedule is not None else None,
                device=config.device,
                dtype=dtype,
                dtypes={**{name: getattr(torch, config.benchmark_dtype) for name in benchmarks},
                        **{name: torch.float64 for name in agents}},
                progress=prefixed(progress, "backtest ") if progress else None,
                infeasible="keep",
                max_gross=b.max_gross,
                memory_budget=b.memory_budget,
            )
            stats = stats_table(result.returns, config)
            # CV tasks checkpoint in the run folder (folder/cv/tasks), resumable after a kill
            cv = run_cv(config, returns, folder, variants, benchmark_params(config, assets), out=run_folder.stage) \
                if config.cv is not None else None
            # the outputs are staged and published at once: a failure until here leaves the previous run
            stage = run_folder.stage
            dump_config(config, stage / "config.yaml")
            result.save(stage)
            saved = {n: s for n, s in strategies.items() if n not in agents}
            algos = {agent_label(a): a.algo for a in config.agents if a.enabled}
            save_strategies(stage, config, saved, variants, returns,  # type: ignore[arg-type]
                            agents={n: (agents[n], algos[n]) for n in agents})
            if stats is not None:
                write_stats(stats, stage)
            write_report(result, stage, title=f"Walk-forward backtest: {config.data.source}", notes=notes,
                         stats=stats, cv=cv, figures=config.figures)
            run_folder.publish()
            for name, row in result.metrics().iterrows():
                tracker.log_metrics({f"{name}.{k}": float(v) for k, v in row.items() if pd.notna(v)})
            tracker.log_artifact(folder)
    return folder, result


__all__ = ["CHECKPOINTS", "save_strategies", "run_backtest"]
