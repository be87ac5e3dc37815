"""The outcome of a walk-forward backtest: daily returns, weights, turnover, costs and metrics.

Files written by :meth:`BacktestResult.save` (each atomically):

- ``returns.parquet``: daily net returns, one row per holding day, one column per strategy,
  plus the gross returns and costs as ``gross:<strategy>`` / ``cost:<strategy>`` columns;
- ``weights.parquet``: long format ``date, strategy, asset, weight_before, weight_after`` with
  one row per rebalance date, strategy and asset;
- ``turnover.parquet``: turnover per rebalance date (rows) and strategy (columns);
- ``metrics.json``: the metrics table (strategy -> measure -> value).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gradfolio import risk
from gradfolio.errors import DataError
from gradfolio.io import atomic_path, atomic_write_json

GROSS, COST = "gross:", "cost:"


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp)


@dataclass
class BacktestResult:
    """Daily returns, weights and turnover of several strategies over the same holding days.

    Attributes
    ----------
    returns
        Net daily simple returns (after costs), shape ``(days, strategies)``, index ``date``.
    gross_returns
        Daily returns before costs, same shape.
    costs
        Cost paid on each day as a fraction of the wealth at the trade (non-zero on the first
        holding day after each rebalance), same shape.
    turnover
        Two-way turnover ``sum_i |w_after_i - w_before_i|`` per rebalance, shape
        ``(rebalances, strategies)``, indexed by decision date.
    weights
        Target weights after each rebalance: strategy -> frame ``(rebalances, assets)``.
    weights_before
        Drifted weights just before each rebalance (zeros before the first one: the backtest
        starts in cash): strategy -> frame ``(rebalances, assets)``.
    periods_per_year
        Periods per year used to annualize the metrics (252 for daily data).
    max_gross
        Gross exposure ``sum_i |w_i|`` above which :meth:`flags` flags a strategy.
    """

    returns: pd.DataFrame
    gross_returns: pd.DataFrame
    costs: pd.DataFrame
    turnover: pd.DataFrame
    weights: dict[str, pd.DataFrame]
    weights_before: dict[str, pd.DataFrame]
    periods_per_year: float = field(default=risk.TRADING_DAYS)
    max_gross: float = 3.0

    @property
    def strategies(self) -> list[str]:
        """Strategy names, in column order."""
        return list(self.returns.columns)

    def wealth(self) -> pd.DataFrame:
        """Compounded wealth ``prod(1 + r)`` of each strategy, starting from 1 (``(days, strategies)``)."""
        return (1.0 + self.returns).cumprod()

    def drawdowns(self) -> pd.DataFrame:
        """Drawdown after each day as a positive fraction of the running peak (``(days, strategies)``)."""
        values = risk.drawdowns(self.returns.to_numpy().T).T
        return pd.DataFrame(values, index=self.returns.index, columns=self.returns.columns)

    def flags(self) -> pd.DataFrame:
        """Degenerate strategies: one row per strategy, ``(strategies, 5)``.

        Columns ``max_gross_exposure`` (largest ``sum_i |w_i|`` of the target weights),
        ``min_wealth`` (lowest compounded wealth), ``gross_exceeded`` (``max_gross_exposure >
        max_gross``), ``wealth_nonpositive`` (the wealth reached zero or below: the strategy lost
        everything, later returns are meaningless) and ``flagged`` (either). A flagged strategy
        is reported, never silently ranked.
        """
        wealth = self.wealth()
        rows = {}
        for name in self.strategies:
            gross = float(self.weights[name].abs().sum(axis=1).max()) if len(self.weights[name]) else 0.0
            low = float(wealth[name].min()) if len(wealth) else 1.0
            rows[name] = {
                "max_gross_exposure": gross,
                "min_wealth": low,
                "gross_exceeded": bool(gross > self.max_gross),
                "wealth_nonpositive": bool(low <= 0.0),
            }
        table = pd.DataFrame.from_dict(rows, orient="index")
        table["flagged"] = table["gross_exceeded"] | table["wealth_nonpositive"]
        table.index.name = "strategy"
        return table

    def warnings(self) -> list[str]:
        """One line per flagged strategy (see :meth:`flags`), empty when none is."""
        lines = []
        for name, row in self.flags().iterrows():
            why = []
            if row["gross_exceeded"]:
                why.append(f"gross exposure reached {row['max_gross_exposure']:.3g} (limit {self.max_gross:g})")
            if row["wealth_nonpositive"]:
                why.append(f"wealth fell to {row['min_wealth']:.3g} (lost everything)")
            if why:
                lines.append(f"strategy '{name}' is degenerate: {' and '.join(why)}; do not trust its metrics.")
        return lines

    def metrics(self) -> pd.DataFrame:
        """Metrics table: one row per strategy.

        Columns are the measures of :func:`gradfolio.risk.summary` on the net daily returns,
        then ``mean_turnover`` (per rebalance), ``annual_turnover`` (turnover per year),
        ``total_cost`` (sum of the costs paid, a fraction of wealth), ``final_wealth``, and from
        :meth:`flags` ``max_gross_exposure``, ``min_wealth`` and ``flagged`` (1.0 for a degenerate
        strategy, else 0.0).
        """
        years = len(self.returns) / self.periods_per_year
        rows = {}
        for name in self.strategies:
            row = risk.summary(self.returns[name].to_numpy(), periods_per_year=self.periods_per_year)
            row["mean_turnover"] = float(self.turnover[name].mean())
            row["annual_turnover"] = float(self.turnover[name].sum() / years)
            row["total_cost"] = float(self.costs[name].sum())
            row["final_wealth"] = float(np.prod(1.0 + self.returns[name].to_numpy()))
            rows[name] = row
        flags = self.flags()
        for name in self.strategies:
            rows[name]["max_gross_exposure"] = float(flags.loc[name, "max_gross_exposure"])
            rows[name]["min_wealth"] = float(flags.loc[name, "min_wealth"])
            rows[name]["flagged"] = float(flags.loc[name, "flagged"])
        table = pd.DataFrame.from_dict(rows, orient="index")
        table.index.name = "strategy"
        return table

    def weights_long(self) -> pd.DataFrame:
        """Weights in long format: ``date, strategy, asset, weight_before, weight_after``."""
        parts = []
        for name in self.strategies:
            after = self.weights[name].stack().rename("weight_after")
            before = self.weights_before[name].stack().rename("weight_before")
            part = pd.concat([before, after], axis=1).reset_index()
            part.columns = ["date", "asset", "weight_before", "weight_after"]
            part.insert(1, "strategy", name)
            parts.append(part)
        return pd.concat(parts, ignore_index=True)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``returns.parquet``, ``weights.parquet``, ``turnover.parquet`` and ``metrics.json``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        daily = pd.concat(
            [self.returns, self.gross_returns.add_prefix(GROSS), self.costs.add_prefix(COST)], axis=1
        )
        _write_parquet(daily, out / "returns.parquet")
        _write_parquet(self.weights_long(), out / "weights.parquet")
        _write_parquet(self.turnover, out / "turnover.parquet")
        atomic_write_json(out / "metrics.json", self.metrics().to_dict(orient="index"))
        return out

    @classmethod
    def load(cls, folder: str | os.PathLike[str], periods_per_year: float = risk.TRADING_DAYS) -> BacktestResult:
        """Read a result written by :meth:`save`."""
        out = Path(folder)
        missing = [n for n in ("returns.parquet", "weights.parquet", "turnover.parquet") if not (out / n).is_file()]
        if missing:
            raise DataError(f"{out}: missing {', '.join(missing)}; point to a folder written by BacktestResult.save.")
        daily = pd.read_parquet(out / "returns.parquet")
        net = [c for c in daily.columns if not c.startswith((GROSS, COST))]
        long = pd.read_parquet(out / "weights.parquet")
        weights, before = {}, {}
        for name in net:
            part = long[long["strategy"] == name]
            assets = pd.unique(part["asset"])
            weights[name] = part.pivot(index="date", columns="asset", values="weight_after")[assets]
            before[name] = part.pivot(index="date", columns="asset", values="weight_before")[assets]
        return cls(
            returns=daily[net],
            gross_returns=daily[[GROSS + n for n in net]].rename(columns=lambda c: c[len(GROSS):]),
            costs=daily[[COST + n for n in net]].rename(columns=lambda c: c[len(COST):]),
            turnover=pd.read_parquet(out / "turnover.parquet"),
            weights=weights,
            weights_before=before,
            periods_per_year=periods_per_year,
        )


__all__ = ["BacktestResult"]
