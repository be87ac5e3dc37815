"""The classical portfolios by name: :data:`PORTFOLIOS`.

Every concrete :class:`~gradfolio.allocation.classical.base.ClassicalPortfolio` is registered
under its ``name`` attribute; its typed ``__init__`` (with the base's ``returns_channel`` and
``returns_kind``) is the schema of its parameters::

    PORTFOLIOS.build("max_sharpe", where="benchmark_params.max_sharpe", risk_free=1e-4, returns_kind="log")
"""

from __future__ import annotations

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.cardinality import CardinalityPortfolio
from gradfolio.allocation.classical.clustering import HierarchicalEqualRiskContribution, NestedClusteredOptimization
from gradfolio.allocation.classical.downside import MaximumCalmar, MaximumSortino, MinimumCVaR, MinimumDrawdown
from gradfolio.allocation.classical.eigen import EigenPortfolio
from gradfolio.allocation.classical.factor_model import FactorMeanVariance
from gradfolio.allocation.classical.hrp import HierarchicalRiskParity
from gradfolio.allocation.classical.mean_variance import MaximumDiversification, MaximumSharpe, MinimumVariance
from gradfolio.allocation.classical.risk_measure_portfolios import (
    MaximumOmega,
    MinimumCDaR,
    MinimumEVaR,
    MinimumMeanAbsoluteDeviation,
    MinimumSemiVariance,
    MinimumWorstRealization,
)
from gradfolio.allocation.classical.risk_parity import RiskParity
from gradfolio.allocation.classical.simple import EqualWeight, InverseVariance, InverseVolatility, RandomPortfolio
from gradfolio.registry import Registry

PORTFOLIOS: Registry[ClassicalPortfolio] = Registry("portfolio")
"""Classical portfolios by their ``name`` (``"equal_weight"``, ``"min_variance"``, ``"hrp"``...)."""

for _cls in (
    EqualWeight, InverseVolatility, RandomPortfolio, EigenPortfolio, RiskParity, HierarchicalRiskParity,
    MinimumVariance, MaximumSharpe, MinimumCVaR, MinimumDrawdown, MaximumCalmar, MaximumSortino,
    InverseVariance, MaximumDiversification, HierarchicalEqualRiskContribution, NestedClusteredOptimization,
    FactorMeanVariance, CardinalityPortfolio,
    MinimumCDaR, MinimumMeanAbsoluteDeviation, MinimumWorstRealization, MinimumSemiVariance,
    MaximumOmega, MinimumEVaR,
):
    PORTFOLIOS.register(_cls.name, _cls)
del _cls

#: Portfolios that ``benchmarks: ["all"]`` runs: every one except the mixed-integer ``cardinality``
#: (solved window by window on the CPU, seconds to minutes each); name it to run it.
NOT_IN_ALL: frozenset[str] = frozenset({"cardinality"})


def default_benchmarks() -> list[str]:
    """The names ``benchmarks: ["all"]`` stands for: :data:`PORTFOLIOS` in order, less :data:`NOT_IN_ALL`."""
    return [name for name in PORTFOLIOS.names() if name not in NOT_IN_ALL]


__all__ = ["PORTFOLIOS", "NOT_IN_ALL", "default_benchmarks"]
