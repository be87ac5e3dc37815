"""Saved strategies: a trained network, a classical portfolio or an agent as a self-describing bundle.

:mod:`~gradfolio.allocation.strategy.bundle` (``strategy.json`` + ``weights.pt``, written
atomically, read without executing anything), :mod:`~gradfolio.allocation.strategy.saved`
(:func:`load_strategy`, :class:`SavedStrategy` and its ``predict``) and
:mod:`~gradfolio.allocation.strategy.rebalance` (holdings, trades, turnover and cost).
Agents are written by :func:`gradfolio.allocation.rl.policy.save_agent` (``kind="agent"``).
See ``docs/daily_use.md``.
"""

from gradfolio.allocation.strategy.bundle import (
    FORMAT_VERSION,
    DataFingerprint,
    StrategySpec,
    json_params,
    read_spec,
    returns_fingerprint,
    save_strategy,
)
from gradfolio.allocation.strategy.rebalance import Holdings, RebalancePlan, read_holdings, rebalance_plan
from gradfolio.allocation.strategy.saved import STRATEGIES_DIR, SavedStrategy, load_strategy, strategy_names

__all__ = [
    "FORMAT_VERSION", "DataFingerprint", "StrategySpec", "json_params", "read_spec",
    "returns_fingerprint", "save_strategy",
    "Holdings", "RebalancePlan", "read_holdings", "rebalance_plan",
    "STRATEGIES_DIR", "SavedStrategy", "load_strategy", "strategy_names",
]
