"""Walk-forward backtests: batched rebalancing, weight drift, costs, rebalancing schedules, results.

See ``docs/backtest.md``. :class:`ProportionalCost` lives in the core (:mod:`gradfolio.costs`, shared
with the allocation losses) and is re-exported here.
"""

from gradfolio.costs import BorrowCost, CompositeCost, CostModel, FixedFee, ProportionalCost, SpreadImpactCost
from gradfolio.backtest.engine import (
    FitHook,
    HoldingStrategy,
    Progress,
    RetrainSchedule,
    Strategy,
    decision_windows,
    needs_holdings,
    simulate,
    walk_forward,
)
from gradfolio.backtest.path import simulate_path
from gradfolio.backtest.results import BacktestResult
from gradfolio.backtest.schedules import CalendarSchedule, Schedule, ThresholdSchedule

__all__ = [
    "ProportionalCost",
    "CostModel",
    "SpreadImpactCost",
    "BorrowCost",
    "FixedFee",
    "CompositeCost",
    "CalendarSchedule",
    "ThresholdSchedule",
    "Schedule",
    "simulate_path",
    "Strategy",
    "HoldingStrategy",
    "needs_holdings",
    "FitHook",
    "Progress",
    "RetrainSchedule",
    "decision_windows",
    "simulate",
    "walk_forward",
    "BacktestResult",
]
