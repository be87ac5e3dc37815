"""The ``constraints:`` section of a backtest config and where its spec goes.

:class:`ConstraintSettings` holds the fields of :class:`gradfolio.solvers.PortfolioConstraints`
with assets by ticker, plus a sector map (``sectors: {file, bounds}``); :meth:`ConstraintSettings.spec`
resolves them against the data's columns. The same spec goes to the network's convex layer
(:func:`constrained_network_params`, at :func:`network_constraint_path`) and to every benchmark
that takes constraints (:func:`constrained_benchmarks`; hrp: per-asset bounds only); the others
are listed by :func:`unconstrained_benchmarks` (warned about and reported as unconstrained).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gradfolio.errors import ConfigError

RunConfig = Any
"""A :class:`~gradfolio.experiments.backtest.config.BacktestConfig` (not imported here: ``config.py``
imports this module, and the import graph has no cycle, not even for type checking)."""

if TYPE_CHECKING:
    from gradfolio.solvers import PortfolioConstraints


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroupSettings(_Section):
    """Exposure limits ``lower <= sum of the assets' weights <= upper`` for a named group of assets."""

    assets: list[str | int] = Field(min_length=1, description="Tickers (column names) or column indices.")
    lower: float | None = None
    upper: float | None = None
    name: str = "group"


class SectorSettings(_Section):
    """Per-sector limits from a sector map file (``ticker,sector``; tickers not in the data are left out)."""

    file: str = Field(description="Path of the ticker,sector CSV (relative to the working directory).")
    bounds: dict[str, tuple[float | None, float | None]] = Field(
        description="sector -> [lower, upper] on the sector's net weight (null for no bound)."
    )


class ConstraintSettings(_Section):
    """Portfolio constraints applied to the network's convex allocator and to every convex benchmark.

    The fields of :class:`gradfolio.solvers.PortfolioConstraints` (assets by ticker), plus
    ``sectors``; resolved against the data's columns by :meth:`spec`.
    """

    budget: float | None = Field(1.0, description="sum w = budget (null: none).")
    long_only: bool = False
    lower: float | list[float | None] | dict[str, float] | None = Field(
        None, description="Per-asset lower bounds: a number, one per asset, or {ticker: value}."
    )
    upper: float | list[float | None] | dict[str, float] | None = Field(
        None, description="Per-asset upper bounds: a number, one per asset, or {ticker: value}."
    )
    max_weight: float | None = Field(None, ge=0.0, description="|w_i| <= max_weight for every asset.")
    groups: list[GroupSettings] = Field(default_factory=list)
    sectors: SectorSettings | None = None
    leverage: float | None = Field(None, ge=0.0, description="sum |w| <= leverage (gross exposure).")
    turnover: float | None = Field(None, description="Not available in a backtest (see the error).")

    @field_validator("turnover")
    @classmethod
    def _no_turnover(cls, value: float | None) -> float | None:
        if value is not None:
            raise ValueError(
                "a turnover limit needs each strategy's previous weights, which the walk-forward does not pass "
                "to the strategies; drop it (backtest.cost_bps charges trading)"
            )
        return value

    def spec(self, assets: list[str] | None = None) -> PortfolioConstraints:
        """The :class:`~gradfolio.solvers.PortfolioConstraints` (sector groups included).

        With ``assets`` (the data's columns) the spec is resolved to indices (``DataError`` naming an
        unknown ticker) and a sector's tickers not in the data are left out; without, it keeps the
        tickers (for checks that need no data).
        """
        from gradfolio.solvers import Group, PortfolioConstraints, load_sector_map, sector_groups

        groups = [Group(tuple(g.assets), g.lower, g.upper, g.name) for g in self.groups]
        if self.sectors is not None:
            groups += sector_groups(load_sector_map(self.sectors.file), self.sectors.bounds, assets)
        spec = PortfolioConstraints(
            budget=self.budget, long_only=self.long_only, lower=self.lower, upper=self.upper,
            max_weight=self.max_weight, groups=tuple(groups), leverage=self.leverage,
        )
        return spec if assets is None else spec.resolve(assets)


def network_constraint_path(config: RunConfig) -> tuple[str, ...]:
    """Where ``config.constraints`` go in ``network.params``: ``("constraints",)`` for a network that takes
    them itself (``markowitz``, ``pto_lstm``, ``pto_ridge``),
    ``("allocator_params", "constraints")`` for a network with ``allocator: convex``.

    Raises
    ------
    ConfigError
        The network has no convex layer (the constraints are not applied by projection: a
        softmax/sparsemax network cannot meet general linear constraints), or its parameters
        already give constraints (one place only).
    """
    from gradfolio.allocation import NETWORKS

    n = config.network
    params = n.params
    if n.name in NETWORKS and "constraints" in NETWORKS.params_model(n.name).model_fields:
        path: tuple[str, ...] = ("constraints",)  # markowitz, pto_lstm, pto_ridge
    elif params.get("allocator") == "convex":
        path = ("allocator_params", "constraints")
    else:
        raise ConfigError(
            f"constraints: network {n.name!r} with allocator {params.get('allocator', 'softmax')!r} has no convex "
            "layer to apply them; use network.name 'markowitz' or network.params.allocator 'convex', or set "
            "network.enabled false to backtest the benchmarks only."
        )
    inner = params if len(path) == 1 else (params.get("allocator_params") or {})
    if inner.get("constraints") is not None:
        raise ConfigError(
            f"network.params.{'.'.join(path)}: constraints are given both there and in the constraints section; "
            "keep one (the constraints section also applies them to the benchmarks)."
        )
    return path


#: Benchmarks that take per-asset bounds but not groups or leverage (the rest of the spec is dropped).
BOUNDS_ONLY = ("hrp",)


def constrained_benchmarks(config: RunConfig, assets: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """``constraints`` parameter (plain data) of every benchmark run that takes one.

    Benchmarks whose class takes ``constraints`` (the convex problems, risk parity, HRP) get the
    spec (resolved against ``assets`` when given); ``hrp`` only its per-asset bounds (recursive
    bisection knows no groups or leverage, as skfolio's HRP). The others are not in the result
    (they run unconstrained: :func:`unconstrained_benchmarks`).

    Raises
    ------
    ConfigError
        A benchmark's ``benchmark_params`` give constraints too (one place only).
    """
    from gradfolio.allocation.classical import PORTFOLIOS, default_benchmarks

    if config.constraints is None:
        return {}
    spec = config.constraints.spec(assets)
    names = default_benchmarks() if config.benchmarks == ["all"] else config.benchmarks
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if "constraints" not in PORTFOLIOS.params_model(name).model_fields:
            continue
        if config.benchmark_params.get(name, {}).get("constraints") is not None:
            raise ConfigError(
                f"benchmark_params.{name}.constraints: constraints are given both there and in the constraints "
                "section; keep one."
            )
        out[name] = spec_data(spec if name not in BOUNDS_ONLY else dataclasses.replace(spec, groups=(), leverage=None))
    return out


def spec_data(spec: PortfolioConstraints) -> dict[str, Any]:
    """A :class:`~gradfolio.solvers.PortfolioConstraints` as plain data (:func:`gradfolio.solvers.constraints.constraints_data`)."""
    from gradfolio.solvers.constraints import constraints_data

    return constraints_data(spec)


def constrained_network_params(config: RunConfig, assets: list[str] | None = None) -> dict[str, Any]:
    """``network.params`` (without ``seed``) with ``config.constraints`` put where the network's convex layer
    takes them (:func:`network_constraint_path`), resolved against ``assets`` when given; a network that takes
    ``returns_kind`` (the predict-then-optimize ones) gets ``data.kind`` unless its params set it."""
    from gradfolio.allocation import NETWORKS

    params = {k: v for k, v in config.network.params.items() if k != "seed"}
    name = config.network.name
    if name in NETWORKS and "returns_kind" in NETWORKS.params_model(name).model_fields:
        params.setdefault("returns_kind", config.data.kind)  # as the benchmarks get it
    if config.constraints is None:
        return params
    path = network_constraint_path(config)
    data = spec_data(config.constraints.spec(assets))
    if len(path) == 1:
        return {**params, "constraints": data}
    return {**params, "allocator_params": {**(params.get("allocator_params") or {}), "constraints": data}}


def unconstrained_benchmarks(config: RunConfig) -> list[str]:
    """The benchmarks run that ignore ``config.constraints`` (not convex problems: equal weight, inverse
    volatility, random, eigen), and ``hrp`` when the spec has groups or leverage it cannot apply."""
    from gradfolio.allocation.classical import PORTFOLIOS, default_benchmarks

    if config.constraints is None:
        return []
    c = config.constraints
    names = default_benchmarks() if config.benchmarks == ["all"] else config.benchmarks
    partial = bool(c.groups or c.sectors or c.leverage is not None)
    return [n for n in names
            if "constraints" not in PORTFOLIOS.params_model(n).model_fields or (n in BOUNDS_ONLY and partial)]


__all__ = [
    "GroupSettings",
    "SectorSettings",
    "ConstraintSettings",
    "BOUNDS_ONLY",
    "network_constraint_path",
    "constrained_benchmarks",
    "unconstrained_benchmarks",
    "constrained_network_params",
    "spec_data",
]
