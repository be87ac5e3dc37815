"""Typed configuration of a walk-forward backtest run (``gradfolio backtest --config FILE``).

Every field has a default that runs on the bundled S&P 500 data, so an empty file is a valid
config. Load one with :func:`load_backtest_config` (YAML or TOML); errors name the file and the
field, e.g. ``run.yaml: field 'backtest.cost_bps': Input should be greater than or equal to 0``.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any, Literal

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gradfolio.data.prices import BUNDLED
from gradfolio.errors import ConfigError
from gradfolio.experiments.backtest.constraints import (
    ConstraintSettings,
    constrained_benchmarks,
    constrained_network_params,
)
from gradfolio.experiments.config_io import load_config


MAX_COST_BPS = 5000.0
"""Upper bound (exclusive) of ``backtest.cost_bps``: a rebalance trades at most twice the wealth of a
fully invested long-only portfolio (sell everything, buy something else: turnover 2), so a rate
below 50% keeps the cost of any such rebalance below 100% of the wealth."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSettings(_Section):
    """Where the prices come from and what the strategies see."""

    source: str = Field("sp500", description="'sp500' (bundled) or the path of a CSV/Parquet price table.")
    kind: Literal["simple", "log"] = Field("simple", description="Return kind of the input windows X.")
    start: dt.date | None = Field(None, description="Drop prices before this date.")
    end: dt.date | None = Field(None, description="Drop prices after this date.")
    assets: list[str] | None = Field(None, description="Keep only these columns (default: all).")
    lookback: int = Field(60, ge=2, description="Days seen per decision.")
    gap: int = Field(0, ge=0, description="Days between the decision and the trade (decision latency).")
    horizon: int = Field(20, ge=1, description="Days over which a training target judges a decision.")
    step: int = Field(1, ge=1, description="Days between consecutive training windows.")

    @model_validator(mode="after")
    def _distinct_assets(self) -> DataSettings:
        if self.assets is not None:
            seen: set[str] = set()
            twice = sorted({a for a in self.assets if a in seen or seen.add(a)})  # type: ignore[func-returns-value]
            if twice:
                raise ValueError(f"assets: {twice} listed twice; list each asset once")
            if len(self.assets) < 2:
                raise ValueError(f"assets: {self.assets} is one asset; a portfolio needs at least 2 (or omit assets)")
        return self


class SplitSettings(_Section):
    """Train / validation / test by time, with a purge of gap + horizon days between parts.

    Either fractions of the rolling windows (``val_frac``, ``test_frac``) or dates
    (``val_start``, ``test_start``: first decision dates of validation and test).
    """

    val_frac: float = Field(0.15, ge=0.0, lt=1.0)
    test_frac: float = Field(0.3, gt=0.0, lt=1.0)
    val_start: dt.date | None = None
    test_start: dt.date | None = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> SplitSettings:
        if (self.val_start is None) != (self.test_start is None):
            raise ValueError("give both val_start and test_start, or neither (then val_frac/test_frac are used)")
        if self.val_start is not None and self.test_start is not None and self.val_start >= self.test_start:
            raise ValueError(f"val_start {self.val_start} must come before test_start {self.test_start}")
        if self.val_frac + self.test_frac >= 1.0:
            raise ValueError(f"val_frac + test_frac = {self.val_frac + self.test_frac} must be below 1")
        return self


class BacktestSettings(_Section):
    """Walk-forward rules over the test period."""

    rebalance_every: int = Field(5, ge=1, description="Days between rebalances.")
    cost_bps: float = Field(
        10.0, ge=0.0, lt=MAX_COST_BPS,
        description="Proportional cost per unit of turnover (bps); below 5000, so that a full switch between "
        "two portfolios (turnover 2) costs less than the whole wealth.",
    )
    max_gross: float = Field(
        3.0, gt=0.0, description="Gross exposure sum |w| above which a strategy is flagged as degenerate."
    )
    memory_budget: int | None = Field(
        None, gt=0, description="Bytes a strategy may use per call (rebalance dates are batched under it); "
        "default a quarter of the available memory.",
    )
    retrain_every: int | None = Field(
        None, ge=1, description="Refit the networks and agents every this many days (off if null)."
    )
    retrain_window: Literal["expanding", "rolling"] = "expanding"
    retrain_size: int | None = Field(None, ge=10, description="Rows of a rolling retraining window.")
    retrain_epochs: int | None = Field(None, ge=1, description="Epochs of each refit (default: train.epochs).")

    @model_validator(mode="after")
    def _rolling_needs_size(self) -> BacktestSettings:
        if self.retrain_every is not None and self.retrain_window == "rolling" and self.retrain_size is None:
            raise ValueError("retrain_window 'rolling' needs retrain_size (rows of the window)")
        return self


class NetworkSettings(_Section):
    """The allocation network trained end to end (``enabled: false`` backtests the benchmarks only)."""

    enabled: bool = True
    label: str | None = Field(None, description="Strategy label (default 'net_<name>'); distinct across `networks`.")
    name: str = Field("dense", description="Network name for gradfolio.allocation.make_network.")
    params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the network.")
    loss: str = Field("sharpe", description="Loss name for gradfolio.allocation.make_loss.")
    loss_params: dict[str, Any] = Field(default_factory=dict)


class AgentSettings(_Section):
    """A reinforcement-learning agent (Stable-Baselines3) trained on a portfolio environment over the data
    before the test period and walked forward beside the networks (gradfolio.allocation.rl)."""

    enabled: bool = True
    label: str | None = Field(None, description="Strategy label (default 'rl_<algo>'); distinct across `agents`.")
    algo: str = Field("ppo", description="ppo, a2c, sac, td3 or ddpg (Stable-Baselines3).")
    timesteps: int = Field(20_000, ge=1, description="Environment steps of training (all paths counted).")
    n_envs: int = Field(64, ge=1, description="Paths stepped at once by the vectorized environment.")
    episode_length: int = Field(50, ge=1, description="Rebalances per training episode (random starts).")
    allocator: str = Field("softmax", description="Action map: an allocator name (softmax, sparsemax, tanh, topk, convex) or 'weights'.")
    allocator_params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the allocator.")
    reward: Literal["log", "differential_sharpe"] = "log"
    eta: float = Field(0.01, gt=0.0, lt=1.0, description="Adaptation rate of the differential Sharpe ratio.")
    obs_scale: float = Field(1.0, gt=0.0, description="Factor on the observed return window.")
    action_scale: float = Field(5.0, gt=0.0, description="Scores = action_scale * action (actions in [-1, 1]).")
    algo_params: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the SB3 algorithm.")
    checkpoint_every: int = Field(10_000, ge=1, description="Environment steps between checkpoints.")
    retrain_timesteps: int | None = Field(
        None, ge=1, description="Environment steps of each walk-forward refit (backtest.retrain_every), continued from "
        "the current policy on the returns up to the refit date (default: timesteps).",
    )
    seed: int | None = Field(
        None, description="Seed of the agent and its random starts (default: the run's seed; in `cv`, `seeds` if given)."
    )


class TrainSettings(_Section):
    """Optimizer and early stopping of the network's training."""

    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0.0)
    l1: float = Field(0.0, ge=0.0, description="L1 penalty on weight matrices.")
    l2: float = Field(0.0, ge=0.0, description="L2 penalty on weight matrices.")
    optimizer: Literal["adam", "ana"] = "adam"
    patience: int = Field(5, ge=1, description="Epochs without validation improvement before stopping.")


class StatsSettings(_Section):
    """Statistical evaluation of the out-of-sample returns (:func:`gradfolio.stats.compare`).

    Written as ``stats.json`` / ``stats.md`` and shown in ``report.html`` when ``benchmark`` is
    among the strategies backtested.
    """

    enabled: bool = True
    benchmark: str = Field("equal_weight", description="Strategy every other is compared with (1/N).")
    level: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence level of the intervals.")
    n_resamples: int = Field(2000, ge=100, description="Bootstrap resamples of the Sharpe intervals.")
    n_multiple_resamples: int = Field(1000, ge=100, description="Bootstrap resamples of the SPA test and MCS.")


class CVSettings(_Section):
    """Cross-validation of every strategy (``cv.json``, ``cv_returns.parquet``, a box plot in the report).

    ``cpcv``: combinatorial purged CV over the decision days (``n_folds`` groups, ``n_test_folds``
    tested per split, purge and embargo from ``lookback, gap, horizon``); ``walk_forward``: the same
    groups tested one after the other, each trained on every group before it (expanding window).
    Tasks (split x seed for the networks and the agents, group x strategy for the classical portfolios) run through
    :func:`gradfolio.experiments.distributed.run_tasks`.
    """

    method: Literal["cpcv", "walk_forward"] = "cpcv"
    n_folds: int = Field(6, ge=3, description="Groups of consecutive decision days.")
    n_test_folds: int = Field(2, ge=1, description="Groups tested per CPCV split.")
    executor: Literal["ray", "serial"] = Field("ray", description="Ray tasks (local by default) or one after the other.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (default: all).")
    address: str | None = Field(None, description="Ray cluster address (default: a local Ray).")

    @model_validator(mode="after")
    def _test_folds(self) -> CVSettings:
        if self.method == "cpcv" and not 2 <= self.n_test_folds < self.n_folds:
            raise ValueError(f"cpcv needs 2 <= n_test_folds < n_folds (got {self.n_test_folds} and {self.n_folds})")
        return self


class BacktestConfig(_Section):
    """A whole backtest run: data, split, walk-forward rules, network, benchmarks, output."""

    data: DataSettings = Field(default_factory=DataSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    networks: list[NetworkSettings] | None = Field(
        None, min_length=1,
        description="Several networks / losses backtested, statistically compared and cross-validated together "
        "(each trained with `train`); replaces `network`.",
    )
    train: TrainSettings = Field(default_factory=TrainSettings)
    agents: list[AgentSettings] = Field(
        default_factory=list,
        description="Reinforcement-learning agents trained on the data before the test period, refitted with "
        "backtest.retrain_every, walked forward with the networks and benchmarks, cross-validated by `cv` and saved "
        "as bundles (needs the rl extra).",
    )
    benchmarks: list[str] = Field(
        default_factory=lambda: ["all"],
        description="Classical portfolio names (gradfolio.allocation.classical), or ['all'], or [] for none.",
    )
    benchmark_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Keyword arguments per benchmark name."
    )
    constraints: ConstraintSettings | None = Field(
        None,
        description="Constraints of the network's convex allocator and of every convex benchmark (null: none).",
    )
    stats: StatsSettings = Field(default_factory=StatsSettings)
    cv: CVSettings | None = Field(None, description="Cross-validate every strategy (off if null).")
    seed: int = 0
    seeds: list[int] | None = Field(
        None, min_length=1, description="Seeds the networks and agents are trained with in the cross-validation "
        "(default: [seed]; an agent with its own seed: [its seed]).",
    )
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = Field(
        "float32", description="Floating type of the network: training, walk-forward and its saved bundle."
    )
    benchmark_dtype: Literal["float32", "float64"] = Field(
        "float64", description="Floating type the classical benchmarks are evaluated (and saved) in."
    )
    out: str = "runs/backtest"
    tracking: bool = Field(True, description="Log the run to MLflow (gradfolio.tracking).")
    figures: bool = Field(True, description="Write the PNG figures (equity, drawdowns, turnover, weights); the HTML report is always written.")
    tracking_uri: str | None = None
    experiment: str = "gradfolio-backtest"

    @model_validator(mode="after")
    def _one_network_section(self) -> BacktestConfig:
        if self.networks is not None:
            if "network" in self.model_fields_set:
                raise ValueError("give either network or networks, not both")
            labels = [n.label or f"net_{n.name}" for n in self.networks if n.enabled]
            repeated = sorted({x for x in labels if labels.count(x) > 1})
            if repeated:
                raise ValueError(f"networks: the labels {repeated} repeat; give each network a distinct 'label'")
        labels = [a.label or f"rl_{a.algo}" for a in self.agents if a.enabled]
        repeated = sorted({x for x in labels if labels.count(x) > 1})
        if repeated:
            raise ValueError(f"agents: the labels {repeated} repeat; give each agent a distinct 'label'")
        return self

    def network_configs(self) -> dict[str, BacktestConfig]:
        """``{label: config}``, one per enabled network: ``self`` with ``network`` set to it (and ``networks``
        cleared), so that every network-building function sees one network. Empty without a network."""
        specs = self.networks if self.networks is not None else [self.network]
        out: dict[str, BacktestConfig] = {}
        for spec in specs:
            if spec.enabled:
                out[spec.label or f"net_{spec.name}"] = self.model_copy(update={"network": spec, "networks": None})
        return out

    def check_references(self) -> None:
        """Check every name and keyword parameter that a registry resolves (called by ``load_config``
        and by ``run_backtest`` before any work).

        ``network.name`` / ``network.params`` against :data:`gradfolio.allocation.NETWORKS` (nested
        ``allocator_params`` against the chosen allocator, down to its ``constraints`` and QP
        ``settings``), ``network.loss`` / ``network.loss_params`` against
        :data:`~gradfolio.allocation.LOSSES` (and that they train together:
        :func:`~gradfolio.allocation.pto.check_training`), ``benchmarks`` and ``benchmark_params`` against
        :data:`gradfolio.allocation.classical.PORTFOLIOS` (each benchmark is built, so values it
        refuses, not only types, are found).

        With ``constraints``: the sector map is read, the network must have a convex layer that
        takes no constraints of its own (see :func:`~gradfolio.experiments.backtest.constraints.network_constraint_path`), and each benchmark
        is built with them where it takes constraints (see :func:`~gradfolio.experiments.backtest.constraints.constrained_benchmarks`).

        Raises
        ------
        ConfigError
            Naming the dotted path of the first bad name or key, e.g.
            ``network.params.allocator_params.settings.max_iter: Input should be a valid integer``.
        """
        from gradfolio.allocation import LOSSES, NETWORKS
        from gradfolio.allocation.pto import check_training
        from gradfolio.allocation.classical import PORTFOLIOS, default_benchmarks

        spec = self.constraints.spec() if self.constraints is not None else None
        specs = [("network", self.network)] if self.networks is None else [
            (f"networks[{i}]", n) for i, n in enumerate(self.networks)]
        for at, n in specs:
            if not n.enabled:
                continue
            NETWORKS.entry(n.name, where=f"{at}.name")
            # the seed goes to make_network; the constraints section into the convex layer's parameters
            params = constrained_network_params(self.model_copy(update={"network": n, "networks": None}))
            NETWORKS.validate(n.name, params, f"{at}.params", provided={"n_assets", "lookback", "n_channels"})
            LOSSES.entry(n.loss, where=f"{at}.loss")
            LOSSES.validate(n.loss, n.loss_params, f"{at}.loss_params")
            check_training(NETWORKS.get(n.name), {**NETWORKS.entry(n.name).defaults, **params},
                           getattr(LOSSES.get(n.loss), "forecast_only", False), at)
        from gradfolio.allocation import ALLOCATORS
        from gradfolio.allocation.rl.training import AGENTS

        for i, a in enumerate(self.agents):
            if a.enabled:
                AGENTS.entry(a.algo, where=f"agents[{i}].algo")
            if a.enabled and a.allocator != "weights":
                ALLOCATORS.entry(a.allocator, where=f"agents[{i}].allocator")
                ALLOCATORS.validate(a.allocator, a.allocator_params, f"agents[{i}].allocator_params",
                                    provided={"n_assets"})
        if self.benchmarks != ["all"]:
            for i, name in enumerate(self.benchmarks):
                PORTFOLIOS.entry(name, where=f"benchmarks[{i}]")
        names = default_benchmarks() if self.benchmarks == ["all"] else self.benchmarks
        for name, params in self.benchmark_params.items():
            if name not in names:
                raise ConfigError(
                    f"benchmark_params.{name}: {name!r} is not among the benchmarks run ({names}); "
                    "add it to benchmarks or drop its parameters."
                )
        context = {"returns_kind": self.data.kind, "seed": self.seed}
        constrained = constrained_benchmarks(self) if spec is not None else {}
        for name in names:  # built (cheap, no data): values a portfolio refuses are found here too
            extra = {"constraints": constrained[name]} if name in constrained else {}
            PORTFOLIOS.build(name, where=f"benchmark_params.{name}", context=context,
                             **self.benchmark_params.get(name, {}), **extra)


def load_backtest_config(path: str | os.PathLike[str]) -> BacktestConfig:
    """Read a YAML/TOML file into a :class:`BacktestConfig` (ConfigError names file and field).

    A relative ``data.source`` path is resolved against the config file's folder (not the working
    folder), after expanding ``~``; a bundled name (``sp500``) is kept.
    """
    config = load_config(BacktestConfig, path)
    return config.model_copy(update={"data": config.data.model_copy(update={"source": resolve_source(config.data.source, path)})})


def resolve_source(source: str, config_path: str | os.PathLike[str]) -> str:
    """``source`` with ``~`` expanded and, when relative, joined to the folder of ``config_path``."""
    if source in BUNDLED:
        return source
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = Path(config_path).expanduser().resolve().parent / path
    return str(path)




def demo_config(quick: bool = False, out: str = "runs/demo") -> BacktestConfig:
    """The config of ``gradfolio demo``.

    Bundled S&P 500 (20 stocks, 1990-2022); a dense network trained with the Sharpe loss on
    windows every 5 days (lookback 60, horizon 20), at most 20 epochs with early stopping
    (patience 4); walked forward over the last 30% of the history against every classical
    benchmark, rebalanced every 5 days with 10 bps costs.

    ``quick=True`` keeps every step but shrinks the data (2017 on) and the training (2 epochs)
    so that the whole run takes seconds (used by the tests).
    """
    config = BacktestConfig(out=out)
    data = config.data.model_copy(update={"step": 5})
    train = config.train.model_copy(update={"epochs": 20, "patience": 4})
    if quick:
        data = data.model_copy(update={"start": dt.date(2017, 1, 1)})
        train = train.model_copy(update={"epochs": 2, "patience": 2})
    return config.model_copy(update={"data": data, "train": train})


__all__ = [
    "DataSettings",
    "SplitSettings",
    "BacktestSettings",
    "NetworkSettings",
    "AgentSettings",
    "TrainSettings",
    "StatsSettings",
    "CVSettings",
    "BacktestConfig",
    "load_backtest_config",
    "demo_config",
]
