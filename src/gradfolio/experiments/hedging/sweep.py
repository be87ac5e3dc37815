"""Reproduce the ANADDH paper's experiments: grids of hedging settings x agents, run through Ray.

Each grid point (experiment, setting, agent) trains one agent and evaluates it, with the
delta, delta-gamma and delta-vega baselines, on the same test episodes
(:func:`gradfolio.experiments.hedging.train.train_agent` / ``evaluate_agent``), in its own
folder ``<sweep>/points/<experiment>/<setting>/<agent>/`` (names made safe slugs by
:func:`gradfolio.experiments.distributed.safe_slug`: a setting named ``..`` cannot leave the sweep
folder); points whose settings coincide (the paper's base setting appears in four experiments)
are trained once, in the first one's folder. The points run through
:func:`gradfolio.experiments.distributed.run_tasks`: a point whose ``result.json`` carries the
fingerprint of its full training config is read back instead of re-run, a point whose config
changed is trained again from scratch, and an interrupted point resumes from its checkpoint, so
a killed sweep continues where it stopped.

The default grid (:data:`PAPER_EXPERIMENTS`) follows Section 6 of the paper:

================  ==========================================================================
``maturity``      hedging option maturity 30 / 120 days (Fig. 1)
``initial_vol``   initial volatility 20 / 30 / 40 / 50% (Fig. 2)
``vol_of_vol``    nu = 0.4 / 0.8 (Fig. 3)
``cost``          cost 0.2% / 0.5% of the option price (Fig. 4)
``trajectory``    1 / 30 days collected per update phase (Fig. 5; the paper gives no values)
================  ==========================================================================

Outputs, written atomically into the sweep folder: ``results.csv`` and ``results.md`` (one row
per experiment, setting and strategy) and ``fig_<experiment>.png`` (mean-std cost, VaR95 and
CVaR95 per strategy and setting, as the paper's figures). Ray runs locally by default
(``ray.init(num_cpus=num_cpus)``) or on a cluster given by ``address`` (every node needs
gradfolio installed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from gradfolio.errors import ConfigError
from gradfolio.experiments.config_io import dump_config, load_config, parse_config
from gradfolio.experiments.distributed import (
    Job,
    check_under,
    job_folder,
    run_tasks,
    safe_slug,
)
from gradfolio.experiments.hedging.train import HedgeTrainingConfig
from gradfolio.experiments.outputs import markdown_table, pyplot, save_figure, write_csv
from gradfolio.hedging.rl.training import CHECKPOINT_NAME
from gradfolio.io import atomic_write_text

AgentName = Literal["gvdh", "anaddh"]
OPTIMIZER = {"gvdh": "adam", "anaddh": "ana"}
METRICS = ("mean", "std", "mean_std", "var_95", "cvar_95", "cost")
M = TypeVar("M", bound=BaseModel)

PAPER_EXPERIMENTS: dict[str, dict[str, dict[str, Any]]] = {
    "maturity": {"30d": {"env.hedge_maturity_days": 30}, "120d": {"env.hedge_maturity_days": 120}},
    "initial_vol": {f"{v}%": {"env.market.sigma0": v / 100} for v in (20, 30, 40, 50)},
    "vol_of_vol": {"nu0.4": {"env.market.nu": 0.4}, "nu0.8": {"env.market.nu": 0.8}},
    "cost": {"0.2%": {"env.cost": 0.002}, "0.5%": {"env.cost": 0.005}},
    "trajectory": {"1day": {"trainer.trajectory_length": 1}, "30days": {"trainer.trajectory_length": 30}},
}


class SweepConfig(BaseModel):
    """A grid of hedging experiments.

    Attributes
    ----------
    base
        Settings shared by every point.
    agents
        Agents trained at every setting (``gvdh`` = Adam, ``anaddh`` = ANA).
    experiments
        ``{experiment: {setting: {dotted.field: value}}}`` overrides of ``base``.
    address
        Ray cluster address; ``None`` starts a local Ray.
    num_cpus
        CPUs of the local Ray (points run in parallel, one CPU each).
    gpus_per_point
        GPUs reserved by each point (e.g. 0.25 to share one GPU among 4 points with ``device: cuda``).
    executor
        ``"ray"`` runs the points as Ray tasks; ``"serial"`` runs them one after the other in this
        process (no Ray start-up; for debugging and small grids).
    output_dir
        Sweep folder.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: HedgeTrainingConfig = HedgeTrainingConfig()
    agents: list[AgentName] = Field(default_factory=lambda: ["gvdh", "anaddh"], min_length=1)
    experiments: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=lambda: PAPER_EXPERIMENTS)
    executor: Literal["ray", "serial"] = "ray"
    address: str | None = None
    num_cpus: int = Field(2, ge=1)
    gpus_per_point: float = Field(0.0, ge=0)
    output_dir: str = "runs/hedge_sweep"

    def check_references(self) -> None:
        """Validate every grid point's overrides (called by ``load_config`` before any work)."""
        grid_points(self)


def load_sweep_config(path: str | os.PathLike[str] | None) -> SweepConfig:
    """The sweep config in ``path`` (YAML/TOML), or the paper's grid when ``None``."""
    return SweepConfig() if path is None else load_config(SweepConfig, path)


def apply_overrides(base: M, overrides: dict[str, Any], where: str) -> M:
    """``base`` (any config model) with ``{"a.b.c": value}`` overrides, validated as a whole.

    Raises
    ------
    ConfigError
        Naming ``where`` and the bad key or field (:func:`~gradfolio.experiments.config_io.parse_config`).
    """
    data = base.model_dump(mode="json")
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{where}: override {key!r}: {part!r} is not a section of {type(base).__name__}.")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"{where}: override {key!r}: unknown field {leaf!r}; check the spelling.")
        node[leaf] = value
    return parse_config(type(base), data, where)


def grid_points(config: SweepConfig) -> list[tuple[str, str, str, HedgeTrainingConfig]]:
    """Every ``(experiment, setting, agent, training config)`` of the sweep, validated up front."""
    points = []
    for experiment, settings in config.experiments.items():
        for setting, overrides in settings.items():
            for agent in config.agents:
                where = f"sweep experiment {experiment!r}, setting {setting!r}"
                cfg = apply_overrides(config.base, {**overrides, "agent.optimizer": OPTIMIZER[agent]}, where)
                points.append((experiment, setting, agent, cfg))
    if not points:
        raise ConfigError("the sweep has no grid point; give at least one experiment with one setting.")
    return points


def run_point(config: dict[str, Any], run_dir: str) -> dict[str, dict[str, float]]:
    """Train and evaluate one point in ``run_dir``; ``{strategy: metrics}``.

    Resumes from ``run_dir/checkpoint.pt`` when an earlier run of the same point was interrupted
    (:func:`~gradfolio.experiments.distributed.run_tasks` empties the folder of another config's point).
    """
    from gradfolio.experiments.hedging.train import evaluate_agent, train_agent

    out = Path(run_dir)
    cfg = HedgeTrainingConfig.model_validate(config)
    agent, _ = train_agent(cfg, out, resume=(out / CHECKPOINT_NAME).is_file())
    table, _ = evaluate_agent(agent, cfg, out)
    return {str(k): {str(m): float(v) for m, v in row.items()} for k, row in table.to_dict(orient="index").items()}


def run_sweep(config: SweepConfig, out_dir: str | os.PathLike[str] | None = None) -> tuple[pd.DataFrame, Path]:
    """Run every grid point (through Ray unless ``executor="serial"``) and write the results table and figures.

    Returns
    -------
    ``(table, sweep_dir)`` with columns ``experiment, setting, strategy`` and :data:`METRICS`.

    Raises
    ------
    ConfigError
        Two different settings of an experiment whose names give the same folder (e.g. ``a/b`` and ``a_b``).
    """
    sweep_dir = Path(out_dir or config.output_dir)
    points = grid_points(config)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, sweep_dir / "sweep.yaml")
    points_dir = sweep_dir.resolve() / "points"
    # settings that coincide (e.g. the base setting appears in several experiments) train once
    unique: dict[str, Job] = {}
    owners: dict[Path, tuple[str, str, str]] = {}
    keys = []
    for exp, setting, agent, cfg in points:
        key = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
        run_dir = job_folder(points_dir, exp, setting, agent)
        if key not in unique:
            if run_dir in owners:
                raise ConfigError(
                    f"sweep: experiment {exp!r}, setting {setting!r} and experiment {owners[run_dir][0]!r}, setting "
                    f"{owners[run_dir][1]!r} both write to {run_dir} (names become {safe_slug(exp)!r}/"
                    f"{safe_slug(setting)!r}); rename one of them."
                )
            owners[run_dir] = (exp, setting, agent)
            unique[key] = Job(str(run_dir), cfg.model_dump(mode="json"))
        keys.append(key)
    results = run_tasks(run_point, list(unique.values()), executor=config.executor, num_cpus=config.num_cpus,
                        address=config.address, gpus_per_task=config.gpus_per_point, threads_per_task=1,
                        root=points_dir)
    done = dict(zip(unique, results, strict=True))
    outputs = [done[key] for key in keys]
    table = results_table(points, outputs)
    write_results(table, sweep_dir)
    return table, sweep_dir


def results_table(points: list[tuple[str, str, str, Any]], outputs: list[dict[str, dict[str, float]]]) -> pd.DataFrame:
    """Long table: the baselines once per setting (from its first point), then each agent."""
    rows, seen = [], set()
    for (experiment, setting, agent, _), metrics in zip(points, outputs, strict=True):
        for strategy, values in metrics.items():
            is_agent = strategy in OPTIMIZER
            if (is_agent and strategy != agent) or (not is_agent and (experiment, setting, strategy) in seen):
                continue
            seen.add((experiment, setting, strategy))
            rows.append({"experiment": experiment, "setting": setting, "strategy": strategy,
                         **{m: values[m] for m in METRICS}})
    return pd.DataFrame(rows)


def write_results(table: pd.DataFrame, sweep_dir: Path) -> None:
    """``results.csv``, ``results.md`` and one ``fig_<experiment>.png`` per experiment, atomically."""
    write_csv(table, sweep_dir / "results.csv")
    parts = []
    for (experiment, setting), group in table.groupby(["experiment", "setting"], sort=False):
        parts.append(f"### {experiment}: {setting}\n\n" + markdown_table(group.set_index("strategy")[list(METRICS)]))
    atomic_write_text(sweep_dir / "results.md", "\n\n".join(parts) + "\n")
    for experiment, group in table.groupby("experiment", sort=False):
        path = check_under(sweep_dir, sweep_dir / f"fig_{safe_slug(str(experiment))}.png")
        experiment_figure(group, path, str(experiment))


def experiment_figure(group: pd.DataFrame, path: Path, title: str) -> Path:
    """Grouped bars of -mean_std, var_95 and cvar_95 (losses, lower is better) per strategy, one panel per setting."""
    plt = pyplot()
    settings = list(dict.fromkeys(group["setting"]))
    fig, axes = plt.subplots(1, len(settings), figsize=(4.5 * len(settings), 3.6), squeeze=False)
    measures = {"-(mean - 1.645 std)": lambda d: -d["mean_std"], "VaR 95%": lambda d: d["var_95"],
                "CVaR 95%": lambda d: d["cvar_95"]}
    for ax, setting in zip(axes[0], settings, strict=True):
        data = group[group["setting"] == setting].set_index("strategy")
        width = 0.8 / len(data)
        for i, (strategy, row) in enumerate(data.iterrows()):
            values = [f(row) for f in measures.values()]
            ax.bar([j + i * width for j in range(len(measures))], values, width, label=str(strategy))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(measures))], list(measures))
        ax.set_title(f"{title}: {setting}")
    axes[0][0].set_ylabel("loss (lower is better)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


__all__ = [
    "PAPER_EXPERIMENTS", "SweepConfig", "load_sweep_config", "apply_overrides", "grid_points",
    "run_point", "run_sweep", "results_table", "write_results", "experiment_figure",
]
