"""gradfolio: deep-learning portfolio management on PyTorch."""

from gradfolio.errors import ConfigError, DataError, GradfolioError, InfeasibleError, SolverError

__version__ = "0.1.0"

__all__ = ["GradfolioError", "DataError", "ConfigError", "InfeasibleError", "SolverError", "__version__"]
