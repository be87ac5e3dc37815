"""Market data: validated prices -> returns -> ``(X, y)`` windows -> torch datasets."""

from gradfolio.data.prices import BUNDLED, Duplicates, load_prices, validate_prices
from gradfolio.data.windows import (
    ReturnKind,
    WindowDataset,
    Windows,
    make_loader,
    make_windows,
    time_split,
    to_returns,
)

__all__ = [
    "BUNDLED",
    "Duplicates",
    "load_prices",
    "validate_prices",
    "ReturnKind",
    "Windows",
    "to_returns",
    "make_windows",
    "time_split",
    "WindowDataset",
    "make_loader",
]
