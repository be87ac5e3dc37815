"""Is it better than 1/N? The statistics table of a backtest run (``stats.json`` / ``stats.md``).

:func:`stats_table` runs :func:`gradfolio.stats.compare` on the run's out-of-sample net returns
against ``config.stats.benchmark`` (``equal_weight``, the 1/N portfolio): per strategy the
annualized Sharpe ratio with its stationary-bootstrap confidence interval, the Sharpe difference
to 1/N with its Ledoit-Wolf (HAC, Parzen kernel) confidence interval and p-value, the
probabilistic Sharpe ratio (vs zero) and the deflated Sharpe ratio with ``n_trials`` = the number
of strategies evaluated, plus the SPA test and model confidence set. Seeded by ``config.seed``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.outputs import markdown_table
from gradfolio.io import atomic_write_json, atomic_write_text
from gradfolio.stats import compare

SHOWN = ["sharpe", "sharpe_lower", "sharpe_upper", "diff", "diff_lower", "diff_upper", "diff_pvalue", "psr", "dsr"]


def stats_table(returns: pd.DataFrame, config: BacktestConfig, n_trials: int | None = None) -> pd.DataFrame | None:
    """:func:`gradfolio.stats.compare` of ``returns (T, S)`` against ``config.stats.benchmark``.

    ``n_trials`` (default ``S``, every strategy evaluated) deflates the Sharpe ratios. ``None`` when
    ``config.stats.enabled`` is false, the benchmark was not backtested or it is the only strategy.
    """
    s = config.stats
    if not s.enabled or s.benchmark not in returns.columns or returns.shape[1] < 2:
        return None
    return compare(returns, benchmark=s.benchmark, level=s.level, n_trials=n_trials or returns.shape[1],
                   n_resamples=s.n_resamples, n_multiple_resamples=s.n_multiple_resamples, seed=config.seed)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def stats_json(table: pd.DataFrame) -> dict[str, Any]:
    """``{"benchmark", "level", "n_trials", "strategies": {name: {column: value}}}`` (NaN -> null)."""
    strategies = {str(name): {str(c): _clean(v) for c, v in row.items()} for name, row in table.iterrows()}
    a = table.attrs
    return {"benchmark": a["benchmark"], "level": a["level"], "n_trials": int(a["n_trials"]),
            "trial_sharpe_var": float(a["trial_sharpe_var"]), "periods_per_year": float(a["periods_per_year"]),
            "spa_pvalues": {k: float(v) for k, v in a["spa_pvalues"].items()}, "strategies": strategies}


def stats_markdown(table: pd.DataFrame) -> str:
    """The main columns as a markdown table, with a line on the benchmark, level and trials."""
    a = table.attrs
    head = (f"Against {a['benchmark']} (1/N); {100 * a['level']:g}% intervals; Sharpe annualized; "
            f"difference: Ledoit-Wolf HAC test; DSR with {a['n_trials']} trials.\n\n")
    return head + markdown_table(table[SHOWN].astype(float), digits=4)


def write_stats(table: pd.DataFrame, folder: str | os.PathLike[str]) -> Path:
    """Write ``stats.json`` and ``stats.md`` into ``folder`` (atomically); returns the JSON path."""
    out = Path(folder)
    atomic_write_text(out / "stats.md", stats_markdown(table))
    return atomic_write_json(out / "stats.json", stats_json(table))


def read_stats(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """``stats.json`` of a run folder back as a table ``(S, columns)`` (null -> NaN)."""
    import json

    data = json.loads((Path(folder) / "stats.json").read_text(encoding="utf-8"))
    table = pd.DataFrame.from_dict(data["strategies"], orient="index")
    table.attrs.update({k: v for k, v in data.items() if k != "strategies"})
    return table


__all__ = ["read_stats", "stats_json", "stats_markdown", "stats_table", "write_stats"]
