"""gradfolio: deep-learning portfolio management on PyTorch."""

from __future__ import annotations

import importlib
from typing import Any

from gradfolio.errors import ConfigError, DataError, GradfolioError, InfeasibleError, SolverError

__version__ = "0.1.0"

_LAZY = {"load_strategy": "gradfolio.allocation.strategy", "SavedStrategy": "gradfolio.allocation.strategy"}
"""Names imported on first use, by module name, so that ``import gradfolio`` stays light (no torch) and the
core never imports a pillar: ``gradfolio.load_strategy`` is :func:`gradfolio.allocation.strategy.load_strategy`."""


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = [
    "GradfolioError", "DataError", "ConfigError", "InfeasibleError", "SolverError", "__version__",
    "load_strategy", "SavedStrategy",
]
