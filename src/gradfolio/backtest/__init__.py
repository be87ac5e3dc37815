"""Walk-forward backtests: batched rebalancing, weight drift, proportional costs, results.

See ``docs/backtest.md``. :class:`ProportionalCost` lives in the core (:mod:`gradfolio.costs`, shared
with the allocation losses) and is re-exported here.
"""

from gradfolio.costs import ProportionalCost
from gradfolio.backtest.engine import (
    FitHook,
    Progress,
    RetrainSchedule,
    Strategy,
    decision_windows,
    simulate,
    walk_forward,
)
from gradfolio.backtest.results import BacktestResult

__all__ = [
    "ProportionalCost",
    "Strategy",
    "FitHook",
    "Progress",
    "RetrainSchedule",
    "decision_windows",
    "simulate",
    "walk_forward",
    "BacktestResult",
]
