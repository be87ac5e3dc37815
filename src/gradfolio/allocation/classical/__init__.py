"""Classical benchmark portfolios with the interface of an allocation network.

Every portfolio maps windows ``X (B, C, L, N)`` to weights ``w (B, N)``, all rebalance dates
at once. :data:`PORTFOLIOS` holds every one by its ``name`` and builds it with parameters
validated by its typed signature. See ``docs/classical.md``.
"""

from gradfolio.allocation.classical.base import ClassicalPortfolio
from gradfolio.allocation.classical.black_litterman import BlackLitterman
from gradfolio.allocation.classical.cardinality import CardinalityPortfolio
from gradfolio.allocation.classical.clustering import HierarchicalEqualRiskContribution, NestedClusteredOptimization
from gradfolio.allocation.classical.covariance import (
    COVARIANCES,
    ewma_covariance,
    exponential_covariance,
    ledoit_wolf_covariance,
    ledoit_wolf_shrinkage,
    resolve_covariance,
    oas_covariance,
    sample_covariance,
)
from gradfolio.allocation.classical.factor_model import (
    FactorMeanVariance,
    FactorModel,
    observed_factor_model,
    statistical_factor_model,
)
from gradfolio.allocation.classical.frontier import Frontier, efficient_frontier, plot_frontier
from gradfolio.allocation.classical.gerber import gerber_covariance
from gradfolio.allocation.classical.spectral import denoised_covariance, detoned_covariance
from gradfolio.allocation.classical.downside import (
    MaximumCalmar,
    MaximumSortino,
    MinimumCVaR,
    MinimumDrawdown,
)
from gradfolio.allocation.classical.eigen import EigenPortfolio
from gradfolio.allocation.classical.hrp import HierarchicalRiskParity
from gradfolio.allocation.classical.mean import james_stein_mean, resolve_mean, sample_mean
from gradfolio.allocation.classical.mean_variance import MaximumDiversification, MaximumSharpe, MinimumVariance
from gradfolio.allocation.classical.risk_measure_portfolios import (
    MaximumOmega,
    MinimumCDaR,
    MinimumEVaR,
    MinimumMeanAbsoluteDeviation,
    MinimumSemiVariance,
    MinimumWorstRealization,
)
from gradfolio.allocation.classical.risk_parity import RiskParity, risk_budget_weights
from gradfolio.allocation.classical.registry import NOT_IN_ALL, PORTFOLIOS, default_benchmarks
from gradfolio.allocation.classical.simple import EqualWeight, InverseVariance, InverseVolatility, RandomPortfolio

__all__ = [
    "ClassicalPortfolio",
    "PORTFOLIOS",
    "NOT_IN_ALL",
    "default_benchmarks",
    "COVARIANCES",
    "sample_covariance",
    "ledoit_wolf_covariance",
    "ledoit_wolf_shrinkage",
    "exponential_covariance",
    "oas_covariance",
    "ewma_covariance",
    "denoised_covariance",
    "detoned_covariance",
    "gerber_covariance",
    "james_stein_mean",
    "resolve_covariance",
    "EqualWeight",
    "InverseVolatility",
    "RandomPortfolio",
    "EigenPortfolio",
    "RiskParity",
    "risk_budget_weights",
    "HierarchicalRiskParity",
    "MinimumVariance",
    "MaximumSharpe",
    "BlackLitterman",
    "sample_mean",
    "resolve_mean",
    "MinimumCVaR",
    "MinimumDrawdown",
    "MaximumCalmar",
    "MaximumSortino",
    "InverseVariance",
    "MaximumDiversification",
    "HierarchicalEqualRiskContribution",
    "NestedClusteredOptimization",
    "FactorMeanVariance",
    "FactorModel",
    "statistical_factor_model",
    "observed_factor_model",
    "CardinalityPortfolio",
    "MinimumCDaR",
    "MinimumMeanAbsoluteDeviation",
    "MinimumWorstRealization",
    "MinimumSemiVariance",
    "MaximumOmega",
    "MinimumEVaR",
    "Frontier",
    "efficient_frontier",
    "plot_frontier",
]
