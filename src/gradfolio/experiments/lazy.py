"""Packages whose public names are imported from their submodule on first use.

``experiments.backtest`` and ``experiments.hedging`` export their public names from their
``__init__.py`` without importing every submodule up front, so that reading a config (the light
``config`` submodule, as the command line does) does not import training or plotting code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps each public name to its submodule.

    Examples
    --------
    In a package's ``__init__.py``: ``__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)``.
    """

    def getattr_(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def dir_() -> list[str]:
        return sorted([*vars(sys.modules[package]), *exports])

    return getattr_, dir_


__all__ = ["lazy_exports"]
