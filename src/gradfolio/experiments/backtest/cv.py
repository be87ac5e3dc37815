"""Cross-validated out-of-sample Sharpe ratios of every strategy: CPCV or walk-forward over the decision days.

The samples are the decision days ``lookback - 1 .. T - 1`` of the returns (one per day), cut
into ``cv.n_folds`` contiguous groups (:class:`gradfolio.data.cv.CombinatorialPurgedCV`). Purge
and embargo come from the window geometry (:func:`gradfolio.data.cv.purge_embargo` with
``lookback, gap, horizon`` in days), so no training window's target overlaps a test block and no
training window after a block sees its days.

- ``cpcv``: each of the ``C(n_folds, n_test_folds)`` splits trains the network (once per seed of
  ``config.seeds``) and every agent of ``agents`` (once per seed: ``config.seeds``, else the agent's
  own seed; on episodes that decide and hold on training days only, :func:`agent_start_rows`) on the training windows (``data.step`` apart) whose decision day is a training
  row, with early stopping on the last ``split.val_frac`` of them (after a purge), then walks it
  forward over each of its test groups. Test group ``g`` is a walk-forward starting from cash at
  the group's first decision day, holding days ending on the day before group ``g + 1``'s first
  holding day (rebalances every ``backtest.rebalance_every`` days, ``backtest.cost_bps`` costs).
  The classical portfolios do not train: each is walked forward over every group once, and the
  same group returns serve every path. The test blocks recombine into the ``phi`` CPCV paths
  (path ``p`` takes group ``g`` from the split :meth:`CombinatorialPurgedCV.paths` names).
- ``walk_forward``: the same groups; group ``g >= 1`` is tested by a network (and each agent) trained
  on every group before it (less the purge): one path over groups ``1 .. n_folds - 1``.

Every task (split x seed for a network or an agent, group x strategy for a classical portfolio) runs
through :func:`gradfolio.experiments.distributed.run_tasks` in ``<run>/cv/tasks/...``, with its
result checkpointed by the fingerprint of the config and the data: a killed run resumes without
redoing finished tasks, a changed config reruns them. Outputs, atomically, in the run folder::

    cv.json              method, folds, purge, embargo, paths; per strategy the Sharpe ratio of
                         every (seed, path) and its mean, std, min, max, per-seed means
    cv.md                the summary table
    cv_returns.parquet   the recombined daily path returns: strategy, seed, path, date, return
    cv_sharpe.png        box plot of the path Sharpe ratios per strategy
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gradfolio import risk
from gradfolio.allocation.classical import PORTFOLIOS
from gradfolio.allocation.strategy import returns_fingerprint
from gradfolio.backtest import ProportionalCost, walk_forward
from gradfolio.data import Windows, make_windows
from gradfolio.data.cv import CombinatorialPurgedCV, purge_embargo
from gradfolio.errors import ConfigError, DataError
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.distributed import Job, job_folder, run_tasks
from gradfolio.experiments.outputs import (
    markdown_table,
    pyplot,
    save_figure,
    write_parquet,
)
from gradfolio.io import atomic_write_json, atomic_write_text
from gradfolio.tracking import NullTracker

NETWORK = "network"
CLASSICAL = "classical"
AGENT = "agent"


@dataclass(frozen=True)
class CVPlan:
    """Splits of the decision days and how their test groups recombine into paths.

    Attributes
    ----------
    first
        Row of the returns of the first decision day (``lookback - 1``); sample ``i`` is row ``first + i``.
    group
        ``(n_samples,)`` group of every sample.
    train
        ``(n_splits, n_samples)`` training masks (after purge and embargo).
    test_groups
        ``n_splits`` lists of the groups each split tests.
    paths
        ``n_paths`` lists of ``(group, split)`` in time order.
    purge, embargo
        Rows removed before / after each test block.
    """

    first: int
    group: np.ndarray
    train: np.ndarray
    test_groups: list[list[int]]
    paths: list[list[tuple[int, int]]]
    purge: int
    embargo: int


def cv_plan(config: BacktestConfig, n_rows: int) -> CVPlan:
    """The splits of ``config.cv`` over the decision days of ``n_rows`` days of returns.

    Raises
    ------
    ConfigError
        ``config.cv`` is not set.
    DataError
        Groups too short for the purge and embargo.
    """
    if config.cv is None:
        raise ConfigError("cv: not set; give cv: {method: cpcv, n_folds: 6, n_test_folds: 2}.")
    d, c = config.data, config.cv
    purge, embargo = purge_embargo(d.lookback, d.gap, d.horizon, 1)
    first = d.lookback - 1
    n = n_rows - first
    k = c.n_test_folds if c.method == "cpcv" else 2  # walk_forward uses the groups only
    cpcv = CombinatorialPurgedCV(c.n_folds, k, purge, embargo)
    try:
        group = cpcv.groups(n)
    except DataError as exc:
        raise DataError(f"cv: {exc}") from exc
    if c.method == "cpcv":
        train, _ = cpcv.masks(n)
        tests = [[int(g) for g in row] for row in cpcv.test_groups]
        pieces = cpcv.paths()
        paths = [[(g, int(pieces[g, p])) for g in range(c.n_folds)] for p in range(cpcv.n_paths)]
    else:
        rows = np.arange(n)
        train = np.stack([rows < int(np.flatnonzero(group == g)[0]) - purge for g in range(1, c.n_folds)])
        tests = [[g] for g in range(1, c.n_folds)]
        paths = [[(g, g - 1) for g in range(1, c.n_folds)]]
    return CVPlan(first, group, train, tests, paths, purge, embargo)


def _group_dates(config: BacktestConfig, returns: pd.DataFrame, plan: CVPlan, g: int) -> tuple[str, str]:
    """First decision day and last holding day of group ``g`` (the day before group ``g + 1``'s first holding day)."""
    rows = np.flatnonzero(plan.group == g) + plan.first
    end = min(len(returns) - 1, int(rows[-1]) + config.data.gap + 1)
    return str(returns.index[rows[0]].date()), str(returns.index[end].date())


def _walk(config: BacktestConfig, strategies: dict[str, Any], returns: pd.DataFrame, start: str, end: str,
          dtype: str) -> pd.Series:
    d, b = config.data, config.backtest
    result = walk_forward(
        strategies, returns, d.lookback, gap=d.gap, rebalance_every=b.rebalance_every,
        cost=ProportionalCost.from_bps(b.cost_bps), start=start, end=end, kind=d.kind, device=config.device,
        dtype=getattr(torch, dtype), infeasible="keep",
    )
    return result.returns.iloc[:, 0]


def _series(s: pd.Series) -> dict[str, list[Any]]:
    return {"dates": [str(t.date()) for t in s.index], "returns": [float(v) for v in s.to_numpy()]}


def _select(windows: Windows, idx: np.ndarray) -> Windows:
    return Windows(windows.X[idx], windows.y[idx], windows.dates[idx], windows.assets, windows.lookback,
                   windows.gap, windows.horizon, windows.step, windows.kind)


def split_windows_cv(config: BacktestConfig, returns: pd.DataFrame, plan: CVPlan, split: int) -> tuple[Windows, Windows]:
    """Train / validation windows (``data.step`` apart) of CV split ``split``.

    The windows whose decision day is a training row of the split; the last ``split.val_frac``
    (at least one) validate, after a purge of ``(gap + horizon) // step`` windows.
    """
    d = config.data
    windows = make_windows(returns, d.lookback, gap=d.gap, horizon=d.horizon, step=d.step, kind=d.kind,
                           source=f"{d.source} (cv split {split})")
    sample = returns.index.get_indexer(windows.dates) - plan.first
    idx = np.flatnonzero(plan.train[split][sample])
    n_val = max(1, round(len(idx) * config.split.val_frac))
    n_train = len(idx) - n_val - (d.gap + d.horizon) // d.step
    if n_train < 1:
        raise DataError(f"cv: split {split} has {len(idx)} training windows, too few for training and validation; "
                        "use fewer folds or a smaller data.step.")
    return _select(windows, idx[:n_train]), _select(windows, idx[len(idx) - n_val:])


def agent_start_rows(config: BacktestConfig, plan: CVPlan, split: int, spec: Any) -> np.ndarray:
    """Decision rows where an agent's training episode may start in CV split ``split``.

    An episode of ``H = episode_length`` rebalances from row ``t_0`` decides at ``t_0 + p k`` and holds
    until ``t_0 + (H - 1) k + gap + k``; it may start where every decision day from ``t_0`` to that
    last held day is a training sample of the split (so it neither decides nor holds in a test group,
    its purge or its embargo; its lookback before ``t_0`` is covered by the embargo, as a network's
    training window is).

    Raises
    ------
    DataError
        No such row (the training groups are shorter than an episode).
    """
    d, b = config.data, config.backtest
    span = (spec.episode_length - 1) * b.rebalance_every + d.gap + b.rebalance_every
    train = plan.train[split]
    n = len(train)
    bad = np.concatenate([[0], np.cumsum(~train)])
    i = np.arange(max(0, n - span))
    ok = bad[i + span + 1] - bad[i] == 0
    rows = plan.first + i[ok]
    if len(rows) == 0:
        raise DataError(
            f"cv: split {split} leaves no training episode of {spec.episode_length} rebalances ({span + 1} days) for "
            f"agent '{spec.label or f'rl_{spec.algo}'}' (the longest run of training days is shorter); use fewer "
            "folds or a shorter episode_length."
        )
    return rows


def check_cv_agents(config: BacktestConfig, n_rows: int) -> None:
    """Raise :class:`DataError` before any training when a CV split has no training episode for an agent."""
    if config.cv is None:
        return
    plan = cv_plan(config, n_rows)
    for spec in config.agents:
        if spec.enabled:
            for s in range(len(plan.test_groups)):
                agent_start_rows(config, plan, s, spec)


def cv_task(job: dict[str, Any], folder: str) -> dict[str, Any]:
    """One CV task (run by :func:`~gradfolio.experiments.distributed.run_tasks`).

    ``job["kind"] == "network"``: train the network of ``job["seed"]`` on split ``job["split"]``
    (checkpoints in ``folder/checkpoints``, resumed after a kill) and walk it over the split's test
    groups; ``"agent"``: the same for the config's one agent (trained on episodes that start at
    :func:`agent_start_rows`, checkpoint ``folder/checkpoints/agent.pt``); ``"classical"``: walk
    ``job["strategy"]`` over group ``job["group"]``.

    Returns
    -------
    ``{"groups": {g: {"dates": [...], "returns": [...]}}}`` (net daily returns).
    """
    from gradfolio.experiments.backtest.build import (
        build_network,
        load_returns,
        train_network,
    )

    config = BacktestConfig.model_validate(job["config"])
    returns = load_returns(config)
    plan = cv_plan(config, len(returns))
    out: dict[str, Any] = {}
    if job["kind"] == NETWORK:
        config = config.model_copy(update={"seed": int(job["seed"])})
        train, val = split_windows_cv(config, returns, plan, int(job["split"]))
        model, loss = build_network(config, train.X.shape[-1])
        train_network(config, model, loss, train, val, Path(folder) / "checkpoints", NullTracker(), resume=True)
        for g in plan.test_groups[int(job["split"])]:
            start, end = _group_dates(config, returns, plan, g)
            out[str(g)] = _series(_walk(config, {"net": model}, returns, start, end, config.dtype))
    elif job["kind"] == AGENT:
        from gradfolio.allocation.rl.training import CHECKPOINT
        from gradfolio.experiments.backtest.agents import agent_env, train_one

        spec, seed, split = config.agents[0], int(job["seed"]), int(job["split"])
        env = agent_env(config, spec, returns, seed, start_rows=agent_start_rows(config, plan, split, spec))
        agent = train_one(config, spec, env, seed, spec.timesteps, Path(folder) / "checkpoints" / CHECKPOINT, True)
        for g in plan.test_groups[split]:
            start, end = _group_dates(config, returns, plan, g)
            out[str(g)] = _series(_walk(config, {"agent": agent}, returns, start, end, "float64"))
    else:
        name = job["strategy"]
        portfolio = PORTFOLIOS.build(name, where=f"benchmark_params.{name}", **job["params"])
        start, end = _group_dates(config, returns, plan, int(job["group"]))
        out[str(job["group"])] = _series(_walk(config, {name: portfolio}, returns, start, end, config.benchmark_dtype))
    return {"groups": out}


def _task_config(config: BacktestConfig) -> dict[str, Any]:
    """What decides a task's result: the config less output, tracking, statistics, executor settings and
    seeds (a task carries its own seed; the classical portfolios' seeds are in their parameters)."""
    assert config.cv is not None
    plain = config.model_copy(update={
        "seed": 0, "seeds": None, "out": "", "tracking": False, "tracking_uri": None, "experiment": "", "stats": type(config.stats)(),
        "cv": config.cv.model_copy(update={"executor": "serial", "num_cpus": None, "address": None}),
    })
    return plain.model_dump(mode="json")


def agent_seeds(config: BacktestConfig, spec: Any) -> list[int]:
    """Seeds an agent is cross-validated with: ``config.seeds`` if given, else its own seed (default the run's)."""
    if config.seeds is not None:
        return seeds_of(config)
    return [config.seed if spec.seed is None else spec.seed]


def cv_jobs(config: BacktestConfig, returns: pd.DataFrame, plan: CVPlan, root: Path,
            networks: Mapping[str, BacktestConfig], benchmarks: dict[str, dict[str, Any]]
            ) -> list[tuple[str, int | None, Job]]:
    """``(strategy, seed, job)`` of every task: network x split x seed, agent x split x seed, classical x group.

    ``networks`` maps each network's label to the config of that one network
    (:meth:`BacktestConfig.network_configs`); the agents are the enabled ones of ``config.agents``
    (seeds: :func:`agent_seeds`).
    """
    data = returns_fingerprint(returns).model_dump(mode="json")
    # a classical task depends on no network or agent, a network task on no benchmark or agent, an agent
    # task on no network, benchmark or other agent
    no_net = config.model_copy(update={"network": config.network.model_copy(update={"enabled": False}),
                                       "networks": None, "agents": []})
    base = {"config": _task_config(no_net), "data": data}
    jobs: list[tuple[str, int | None, Job]] = []
    for label, net_config in networks.items():
        alone = net_config.model_copy(update={"benchmarks": [], "benchmark_params": {}, "agents": []})
        net = {"config": _task_config(alone), "data": data, "kind": NETWORK}
        for seed in seeds_of(config):
            for s in range(len(plan.test_groups)):
                folder = job_folder(root, label, f"split-{s}", f"seed-{seed}")
                jobs.append((label, seed, Job(str(folder), {**net, "split": s, "seed": seed})))
    for spec in config.agents:
        if not spec.enabled:
            continue
        label = spec.label or f"rl_{spec.algo}"
        alone = no_net.model_copy(update={"benchmarks": [], "benchmark_params": {},
                                          "agents": [spec.model_copy(update={"seed": None})]})
        task = {"config": _task_config(alone), "data": data, "kind": AGENT}
        for seed in agent_seeds(config, spec):
            for s in range(len(plan.test_groups)):
                folder = job_folder(root, label, f"split-{s}", f"seed-{seed}")
                jobs.append((label, seed, Job(str(folder), {**task, "split": s, "seed": seed})))
    used = sorted({g for row in plan.test_groups for g in row})
    for name, params in benchmarks.items():
        for g in used:
            folder = job_folder(root, name, f"group-{g}")
            job = {**base, "kind": CLASSICAL, "strategy": name, "params": params, "group": g}
            jobs.append((name, None, Job(str(folder), job)))
    return jobs


def seeds_of(config: BacktestConfig) -> list[int]:
    """``config.seeds`` (default ``[config.seed]``); raise :class:`ConfigError` on a repeated seed."""
    seeds = list(config.seeds) if config.seeds is not None else [config.seed]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: {seeds} repeats a seed; give distinct seeds.")
    return seeds


def recombine(plan: CVPlan, pieces: dict[int, dict[str, Any]], by_split: bool) -> list[pd.Series]:
    """The path return series: path ``p`` concatenates, in group order, group ``g``'s returns from
    ``pieces[split][g]`` (network, ``by_split``) or ``pieces[g][g]`` (classical: one walk per group)."""
    out = []
    for path in plan.paths:
        parts = []
        for g, s in path:
            piece = pieces[s if by_split else g]["groups"][str(g)]
            parts.append(pd.Series(piece["returns"], index=pd.DatetimeIndex(piece["dates"]), dtype=float))
        out.append(pd.concat(parts))
    return out


def run_cv(config: BacktestConfig, returns: pd.DataFrame, folder: Path,
           networks: Mapping[str, BacktestConfig] | str | None, benchmarks: dict[str, dict[str, Any]],
           out: Path | None = None) -> pd.DataFrame:
    """Run every CV task (resumable) and write ``cv.json``, ``cv.md``, ``cv_returns.parquet``, ``cv_sharpe.png``.

    Parameters
    ----------
    folder
        The run folder: the tasks checkpoint in ``folder/cv/tasks``.
    returns
        Simple returns ``(T, N)`` of the run.
    out
        Where the outputs are written (default ``folder``; a run's staging folder, published with
        the rest of the run's outputs).
    networks
        Label -> config of each network (:meth:`BacktestConfig.network_configs`); a single label
        stands for ``{label: config}``; ``None`` or ``{}``: classical portfolios only.
    benchmarks
        Classical portfolio name -> keyword parameters (:func:`~gradfolio.experiments.backtest.run.benchmark_params`).

    Returns
    -------
    Long table ``strategy, seed, path, sharpe`` (annualized Sharpe of each recombined path;
    seed ``<NA>`` for the classical portfolios).
    """
    assert config.cv is not None
    plan = cv_plan(config, len(returns))
    root = folder.resolve() / "cv" / "tasks"
    if isinstance(networks, str):
        networks = {networks: config}
    jobs = cv_jobs(config, returns, plan, root, networks or {}, benchmarks)
    c = config.cv
    results = run_tasks(cv_task, [j for _, _, j in jobs], executor=c.executor, num_cpus=c.num_cpus,
                        address=c.address, threads_per_task=1, root=root)
    rows, frames = [], []
    grouped: dict[tuple[str, int | None], dict[int, dict[str, Any]]] = {}
    for (name, seed, job), res in zip(jobs, results, strict=True):
        key = job.config["group"] if job.config["kind"] == CLASSICAL else job.config["split"]
        grouped.setdefault((name, seed), {})[int(key)] = res
    for (name, seed), pieces in grouped.items():
        for p, series in enumerate(recombine(plan, pieces, by_split=seed is not None)):
            sharpe = float(risk.sharpe_ratio(torch.tensor(series.to_numpy(), dtype=torch.float64)))
            rows.append({"strategy": name, "seed": seed, "path": p, "sharpe": sharpe})
            frames.append(pd.DataFrame({"strategy": name, "seed": seed, "path": p, "date": series.index,
                                        "return": series.to_numpy()}))
    table = pd.DataFrame(rows).astype({"seed": "Int64"})
    long = pd.concat(frames, ignore_index=True).astype({"seed": "Int64"})
    target = folder if out is None else out
    write_parquet(long, target / "cv_returns.parquet")
    write_cv(table, plan, config, target)
    return table


def cv_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: mean, std (ddof=1; 0 with one value), min, max of the path Sharpe ratios and their count."""
    g = table.groupby("strategy", sort=False)["sharpe"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "min": g.min(), "max": g.max(),
                        "n": g.size().astype(float)})
    return out.sort_values("mean", ascending=False)


def write_cv(table: pd.DataFrame, plan: CVPlan, config: BacktestConfig, folder: str | os.PathLike[str]) -> Path:
    """``cv.json``, ``cv.md`` and ``cv_sharpe.png`` (atomically); returns the JSON path."""
    assert config.cv is not None
    out = Path(folder)
    summary = cv_summary(table)
    strategies = {}
    for name, part in table.groupby("strategy", sort=False):
        seeds = [None if pd.isna(s) else int(s) for s in dict.fromkeys(part["seed"])]
        per_seed = [[float(v) for v in part[(part["seed"].isna()) if s is None else (part["seed"] == s)]
                     .sort_values("path")["sharpe"]] for s in seeds]
        row = summary.loc[name]
        strategies[str(name)] = {
            "seeds": seeds, "sharpe": per_seed, "per_seed_mean": [float(np.mean(v)) for v in per_seed],
            "mean": float(row["mean"]), "std": float(row["std"]), "min": float(row["min"]), "max": float(row["max"]),
        }
    c = config.cv
    data = {"method": c.method, "n_folds": c.n_folds, "n_test_folds": c.n_test_folds if c.method == "cpcv" else 1,
            "n_splits": len(plan.test_groups), "n_paths": len(plan.paths), "purge": plan.purge,
            "embargo": plan.embargo, "seeds": seeds_of(config), "strategies": strategies}
    head = (f"{c.method}: {c.n_folds} groups, {len(plan.test_groups)} splits, {len(plan.paths)} paths, purge "
            f"{plan.purge} / embargo {plan.embargo} days; annualized out-of-sample Sharpe per path (and seed).\n\n")
    atomic_write_text(out / "cv.md", head + markdown_table(summary, digits=4))
    cv_png(table, out / "cv_sharpe.png")
    return atomic_write_json(out / "cv.json", data)


def cv_png(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Box plot of the path Sharpe ratios per strategy (best median first)."""
    plt = pyplot()
    order = table.groupby("strategy", sort=False)["sharpe"].median().sort_values(ascending=False).index
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(order)), 4.0))
    ax.boxplot([table.loc[table["strategy"] == s, "sharpe"].to_numpy() for s in order])
    ax.set_xticks(range(1, len(order) + 1), [str(s) for s in order], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("out-of-sample Sharpe per path")
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def read_cv(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """``cv.json`` of a run folder as the long table ``strategy, seed, path, sharpe``."""
    import json

    data = json.loads((Path(folder) / "cv.json").read_text(encoding="utf-8"))
    rows = [{"strategy": name, "seed": seed, "path": p, "sharpe": v}
            for name, s in data["strategies"].items() for seed, values in zip(s["seeds"], s["sharpe"], strict=True)
            for p, v in enumerate(values)]
    return pd.DataFrame(rows).astype({"seed": "Int64"})


__all__ = [
    "CVPlan",
    "agent_seeds",
    "agent_start_rows",
    "check_cv_agents",
    "cv_jobs",
    "cv_plan",
    "cv_png",
    "cv_summary",
    "cv_task",
    "read_cv",
    "recombine",
    "run_cv",
    "seeds_of",
    "split_windows_cv",
    "write_cv",
]
