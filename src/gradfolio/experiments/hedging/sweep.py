"""Reproduce the ANADDH paper's experiments: grids of hedging settings x agents, run through Ray.

Each grid point (experiment, setting, agent) trains one agent and evaluates it, with the
delta, delta-gamma and delta-vega baselines, on the same test episodes
(:func:`gradfolio.experiments.hedging.train.train_agent` / ``evaluate_agent``), in its own
folder ``<sweep>/points/<experiment>/<setting>/<agent>/`` (names made safe slugs by
:func:`gradfolio.experiments.distributed.safe_slug`: a setting named ``..`` cannot leave the sweep
folder); points whose settings coincide (the paper's base setting appears in four experiments)
are trained once, in the first one's folder. With ``seeds`` (:attr:`SweepConfig.seeds`) every
distinct point is trained once per training seed (``trainer.seed`` replaced), in
``points/<experiment>/<setting>/<agent>/seed_<s>/``. The points (or point x seed jobs) run through
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
CVaR95 per strategy and setting, as the paper's figures). With ``seeds``: ``results_seeds.csv``
(one row per experiment, setting, strategy and seed), ``results.csv`` holds the mean over the
seeds of every metric, its ``<metric>_ci`` (half-width of the 95% Student t interval,
:func:`gradfolio.stats.seeds.t_interval`; 0 for the baselines, which do not depend on the
training seed) and ``n_seeds``; ``results.md`` prints ``mean ± half-width`` cells and the figures
draw the half-widths as error bars. Ray runs locally by default
(``ray.init(num_cpus=num_cpus)``) or on a cluster given by ``address`` (every node needs
gradfolio installed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gradfolio.errors import ConfigError
from gradfolio.experiments.config_io import dump_config, load_config, parse_config
from gradfolio.experiments.distributed import (
    Job,
    check_under,
    job_folder,
    run_tasks,
    safe_slug,
)
from gradfolio.experiments.hedging.train import HedgeTrainingConfig, seeded
from gradfolio.experiments.outputs import markdown_table, pyplot, save_figure, write_csv
from gradfolio.hedging.rl.training import CHECKPOINT_NAME
from gradfolio.io import atomic_write_text
from gradfolio.stats.seeds import check_seeds, format_summary, seed_summary

AgentName = Literal["gvdh", "anaddh"]
OPTIMIZER = {"gvdh": "adam", "anaddh": "ana"}
METRICS = ("mean", "std", "mean_std", "var_95", "cvar_95", "cost")
SEEDS_FILE = "results_seeds.csv"
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
    seeds
        Training seeds (two or more distinct, ``>= 0``): every distinct point is trained once per
        seed (``trainer.seed`` replaced) in ``<agent>/seed_<s>/`` and every number is reported as the
        mean with a 95% t interval over the seeds. ``None``: one training per point with
        ``base.trainer.seed`` (or the setting's), in ``<agent>/``.
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
    seeds: list[int] | None = None
    executor: Literal["ray", "serial"] = "ray"
    address: str | None = None
    num_cpus: int = Field(2, ge=1)
    gpus_per_point: float = Field(0.0, ge=0)
    output_dir: str = "runs/hedge_sweep"

    @field_validator("seeds")
    @classmethod
    def _check_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        return None if seeds is None else check_seeds(seeds)

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

    With ``config.seeds`` every distinct point trains once per seed, all jobs through one
    :func:`~gradfolio.experiments.distributed.run_tasks` call (finished ones read back).

    Returns
    -------
    ``(table, sweep_dir)``. Without seeds, ``table`` has the columns ``experiment, setting,
    strategy`` and :data:`METRICS` (one training per point). With seeds it is the summary over
    the seeds (:func:`seed_summary_table`, also ``results.csv``): ``experiment, setting,
    strategy``, then for each metric of :data:`METRICS` its mean ``<metric>`` and the half-width
    ``<metric>_ci`` of its 95% Student t interval (0 for the baselines), and ``n_seeds``; the
    per-seed rows are in ``results_seeds.csv`` (:func:`seeds_table`).

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
    seeds: list[int | None] = list(config.seeds) if config.seeds is not None else [None]
    # settings that coincide (e.g. the base setting appears in several experiments) train once (per seed)
    unique: dict[str, Job] = {}
    owners: dict[Path, tuple[str, str, str]] = {}
    keys: dict[int | None, list[str]] = {seed: [] for seed in seeds}
    for exp, setting, agent, base_cfg in points:
        for seed in seeds:
            cfg = seeded(base_cfg, seed)
            key = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
            parts = (exp, setting, agent) if seed is None else (exp, setting, agent, f"seed_{seed}")
            run_dir = job_folder(points_dir, *parts)
            if key not in unique:
                if run_dir in owners:
                    raise ConfigError(
                        f"sweep: experiment {exp!r}, setting {setting!r} and experiment {owners[run_dir][0]!r}, "
                        f"setting {owners[run_dir][1]!r} both write to {run_dir} (names become {safe_slug(exp)!r}/"
                        f"{safe_slug(setting)!r}); rename one of them."
                    )
                owners[run_dir] = (exp, setting, agent)
                unique[key] = Job(str(run_dir), cfg.model_dump(mode="json"))
            keys[seed].append(key)
    results = run_tasks(run_point, list(unique.values()), executor=config.executor, num_cpus=config.num_cpus,
                        address=config.address, gpus_per_task=config.gpus_per_point, threads_per_task=1,
                        root=points_dir)
    done = dict(zip(unique, results, strict=True))
    if config.seeds is None:
        table = results_table(points, [done[key] for key in keys[None]])
        write_results(table, sweep_dir)
        return table, sweep_dir
    per_seed = seeds_table(points, {seed: [done[key] for key in keys[seed]] for seed in config.seeds})
    table = seed_summary_table(per_seed)
    write_results(table, sweep_dir, per_seed)
    return table, sweep_dir


def results_table(points: list[tuple[str, str, str, Any]], outputs: list[dict[str, dict[str, float]]]) -> pd.DataFrame:
    """Long table: the baselines once per setting (from its first point, in the order of the point's
    ``evaluation.strategies``), then each agent. The order does not depend on whether a point was
    trained now or read back (``result.json`` stores its strategies sorted by name)."""
    rows, seen = [], set()
    for (experiment, setting, agent, cfg), metrics in zip(points, outputs, strict=True):
        evaluation = getattr(cfg, "evaluation", None)
        order = {s: i for i, s in enumerate(getattr(evaluation, "strategies", ()))}
        ranked = sorted(metrics.items(), key=lambda item: (item[0] in OPTIMIZER, order.get(item[0], len(order))))
        for strategy, values in ranked:
            is_agent = strategy in OPTIMIZER
            if (is_agent and strategy != agent) or (not is_agent and (experiment, setting, strategy) in seen):
                continue
            seen.add((experiment, setting, strategy))
            rows.append({"experiment": experiment, "setting": setting, "strategy": strategy,
                         **{m: values[m] for m in METRICS}})
    return pd.DataFrame(rows)


def seeds_table(points: list[tuple[str, str, str, Any]],
                outputs: dict[int, list[dict[str, dict[str, float]]]]) -> pd.DataFrame:
    """Long table over seeds (``results_seeds.csv``): ``experiment, setting, strategy, seed`` and
    :data:`METRICS`, the rows of :func:`results_table` of each seed (``outputs[seed]``), the seeds
    of a strategy together in the order given."""
    tables = [results_table(points, rows).assign(seed=seed).rename_axis("order").reset_index()
              for seed, rows in outputs.items()]
    table = pd.concat(tables, ignore_index=True).sort_values("order", kind="stable")
    return table[["experiment", "setting", "strategy", "seed", *METRICS]].reset_index(drop=True)


def seed_summary_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% t half-width over seeds (:func:`gradfolio.stats.seeds.seed_summary`) per
    experiment, setting and strategy: columns ``experiment, setting, strategy``, ``<metric>``,
    ``<metric>_ci`` for each metric of :data:`METRICS`, and ``n_seeds``."""
    parts = []
    for (experiment, setting), group in per_seed.groupby(["experiment", "setting"], sort=False):
        summary = seed_summary(group[["seed", "strategy", *METRICS]]).reset_index()
        parts.append(summary.assign(experiment=experiment, setting=setting))
    table = pd.concat(parts, ignore_index=True)
    table["n_seeds"] = table["n_seeds"].astype(int)
    metrics = [c for m in METRICS for c in (m, f"{m}_ci")]
    return table[["experiment", "setting", "strategy", *metrics, "n_seeds"]]


def write_results(table: pd.DataFrame, sweep_dir: Path, per_seed: pd.DataFrame | None = None) -> None:
    """``results.csv``, ``results.md`` and one ``fig_<experiment>.png`` per experiment, atomically.

    With ``per_seed`` (:func:`seeds_table`), ``table`` is its :func:`seed_summary_table`: also
    ``results_seeds.csv``, ``mean ± half-width`` cells in ``results.md`` and error bars in the figures.
    Without it a stale ``results_seeds.csv`` (an earlier sweep with seeds in the folder) is removed.
    """
    write_csv(table, sweep_dir / "results.csv")
    parts = []
    if per_seed is None:
        (sweep_dir / SEEDS_FILE).unlink(missing_ok=True)
        for (experiment, setting), group in table.groupby(["experiment", "setting"], sort=False):
            cells = group.set_index("strategy")[list(METRICS)]
            parts.append(f"### {experiment}: {setting}\n\n" + markdown_table(cells))
    else:
        write_csv(per_seed, sweep_dir / SEEDS_FILE)
        seeds = list(dict.fromkeys(per_seed["seed"]))
        parts.append(f"Mean ± half-width of the 95% Student t interval over {len(seeds)} training seeds "
                     f"({', '.join(map(str, seeds))}); each seed's row is in {SEEDS_FILE}. The baselines do not "
                     "depend on the training seed (half-width 0).")
        for (experiment, setting), group in table.groupby(["experiment", "setting"], sort=False):
            cells = format_summary(group.set_index("strategy")[[c for m in METRICS for c in (m, f"{m}_ci")]])
            parts.append(f"### {experiment}: {setting}\n\n" + markdown_table(cells))
    atomic_write_text(sweep_dir / "results.md", "\n\n".join(parts) + "\n")
    for experiment, group in table.groupby("experiment", sort=False):
        path = check_under(sweep_dir, sweep_dir / f"fig_{safe_slug(str(experiment))}.png")
        experiment_figure(group, path, str(experiment))


def experiment_figure(group: pd.DataFrame, path: Path, title: str) -> Path:
    """Grouped bars of -mean_std, var_95 and cvar_95 (losses, lower is better) per strategy, one panel per setting.

    When ``group`` has ``<metric>_ci`` columns (a sweep with seeds: the bars are means) the
    half-widths of the 95% t intervals are drawn as error bars.
    """
    plt = pyplot()
    settings = list(dict.fromkeys(group["setting"]))
    fig, axes = plt.subplots(1, len(settings), figsize=(4.5 * len(settings), 3.6), squeeze=False)
    measures = {"-(mean - 1.645 std)": lambda d: -d["mean_std"], "VaR 95%": lambda d: d["var_95"],
                "CVaR 95%": lambda d: d["cvar_95"]}
    columns = ("mean_std", "var_95", "cvar_95")
    with_ci = all(f"{c}_ci" in group.columns for c in columns)
    for ax, setting in zip(axes[0], settings, strict=True):
        data = group[group["setting"] == setting].set_index("strategy")
        width = 0.8 / len(data)
        for i, (strategy, row) in enumerate(data.iterrows()):
            values = [f(row) for f in measures.values()]
            yerr = [row[f"{c}_ci"] for c in columns] if with_ci else None
            ax.bar([j + i * width for j in range(len(measures))], values, width, yerr=yerr,
                   capsize=2 if with_ci else 0, label=str(strategy))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(measures))], list(measures))
        ax.set_title(f"{title}: {setting}")
    axes[0][0].set_ylabel("loss (lower is better)" + (", mean ± 95% t" if with_ci else ""))
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


__all__ = [
    "PAPER_EXPERIMENTS", "SweepConfig", "load_sweep_config", "apply_overrides", "grid_points", "seeded",
    "run_point", "run_sweep", "results_table", "seeds_table", "seed_summary_table", "write_results",
    "experiment_figure",
]
