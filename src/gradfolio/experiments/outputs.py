"""What every run folder's report shares: markdown tables, the HTML page shell, PNG figures, tables on disk.

Both pillars' reports (:mod:`gradfolio.experiments.backtest.report`,
:mod:`gradfolio.experiments.hedging.report`) and the hedging sweep write through these helpers,
so every page has the same look and every file is written atomically (a temporary name, then
a rename: nothing half-written is left behind).
"""

from __future__ import annotations

import html
import numbers
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from gradfolio.io import atomic_path

PAGE_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{padding:4px 10px;text-align:right;border-bottom:1px solid #ddd}"
)
"""The CSS of every report page."""


def markdown_table(table: pd.DataFrame, digits: int = 3) -> str:
    """A table ``(rows, columns)`` as a GitHub markdown table (the index level(s) as first column(s)).

    Parameters
    ----------
    table
        Numbers are printed with ``digits`` decimals; anything else (strings such as ``"0.5 ± 0.1"``,
        booleans) as text. Each index level heads a column with its name (blank if unnamed).
    digits
        Decimals printed for every number.
    """

    def cell(v: object) -> str:
        number = isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
        return f"{v:.{digits}f}" if number else str(v)

    head = [name or "" for name in table.index.names] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, row in zip(table.index, table.itertuples(index=False), strict=True):
        keys = key if isinstance(key, tuple) else (key,)
        lines.append("| " + " | ".join([str(k) for k in keys] + [cell(v) for v in row]) + " |")
    return "\n".join(lines) + "\n"


def html_page(title: str, body: str, head: str = "") -> str:
    """A whole HTML page: ``<title>`` and ``<h1>`` are the escaped ``title``, then ``body``.

    Parameters
    ----------
    title
        Plain text (escaped here).
    body
        HTML placed after the ``<h1>`` heading (already escaped by the caller).
    head
        HTML placed at the end of ``<head>``, after the style (e.g. an inlined ``<script>``).
    """
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{PAGE_STYLE}</style>{head}</head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg back end (figures render without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int) -> Path:
    """Save a matplotlib figure as PNG atomically at ``dpi`` and close it; returns ``path``."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str], index: bool = False) -> Path:
    """Write ``frame`` as CSV atomically (without its index unless ``index``); returns ``path``."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=index)
    return Path(path)


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike[str], index: bool = False) -> Path:
    """Write ``frame`` as Parquet atomically (without its index unless ``index``); returns ``path``."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=index)
    return Path(path)


__all__ = ["PAGE_STYLE", "markdown_table", "html_page", "pyplot", "save_figure", "write_csv", "write_parquet"]
