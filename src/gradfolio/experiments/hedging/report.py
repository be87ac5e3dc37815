"""Hedging run outputs: P&L table, histograms (HTML with plotly, PNG with matplotlib), run folder.

:func:`write_hedge_run` writes, atomically, into one folder::

    config.yaml    the HedgingConfig that produced the run
    metrics.json   {strategy: {mean, std, mean_std, var_95, cvar_95, cost, contracts}}
    metrics.md     the same table in markdown
    pnl.parquet    total P&L per path, one column per strategy
    pnl_hist.png   overlaid P&L histograms (matplotlib)
    report.html    interactive histograms + metrics table (plotly, self-contained)

It takes any ``{name: Episode}``, so agents' evaluations reuse it alongside the baselines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from gradfolio.experiments.config_io import dump_config
from gradfolio.experiments.run_folder import RunFolder
from gradfolio.experiments.outputs import html_page, markdown_table, pyplot, save_figure, write_parquet
from gradfolio.hedging.env import Episode
from gradfolio.io import atomic_write_json, atomic_write_text


def pnl_frame(results: Mapping[str, Episode]) -> pd.DataFrame:
    """Total P&L per path ``(paths, strategies)`` as a DataFrame."""
    return pd.DataFrame({name: ep.total_pnl.detach().cpu().double().numpy() for name, ep in results.items()})


def histogram_png(pnl: pd.DataFrame, path: str | os.PathLike[str], bins: int = 80) -> Path:
    """Overlaid histograms of the total P&L of each strategy, saved as PNG atomically."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    lo, hi = pnl.quantile(0.001).min(), pnl.quantile(0.999).max()
    for name in pnl.columns:
        ax.hist(pnl[name].clip(lo, hi), bins=bins, range=(lo, hi), alpha=0.45, label=name)
    ax.set_xlabel("total P&L per episode")
    ax.set_ylabel("paths")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def report_html(table: pd.DataFrame, pnl: pd.DataFrame, title: str = "Hedging strategies") -> str:
    """Self-contained HTML page: plotly P&L histograms per strategy and the metrics table."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name in pnl.columns:
        fig.add_trace(go.Histogram(x=pnl[name], name=name, opacity=0.5, nbinsx=100))
    fig.update_layout(barmode="overlay", xaxis_title="total P&L per episode", yaxis_title="paths", title=title)
    plot = fig.to_html(full_html=False, include_plotlyjs=True)
    rows = table.to_html(float_format=lambda v: f"{v:.4f}", border=0)
    body = (
        f"<h2>Total P&amp;L per episode</h2>{rows}"
        "<p>mean_std = mean - c&middot;std; var/cvar are positive losses of the total P&amp;L; "
        "cost and contracts are per-episode means.</p>"
        f"{plot}"
    )
    return html_page(title, body)


def write_hedge_run(
    out_dir: str | os.PathLike[str],
    config: BaseModel,
    table: pd.DataFrame,
    results: Mapping[str, Episode],
    title: str = "Hedging strategies",
    add: bool = False,
) -> Path:
    """Write the run folder described in the module docstring; returns the folder.

    The folder is opened as a ``"hedge"`` :class:`~gradfolio.experiments.run_folder.RunFolder`
    (refused when it is foreign or another run writes it); the files are staged and published
    together. With ``add`` they join the files already there (a report next to a trained
    agent); otherwise they replace the previous run's.
    """
    with RunFolder(out_dir, "hedge") as run_folder:
        _write_files(run_folder.stage, config, table, results, title)
        return run_folder.publish(add=add)


def _write_files(
    out: Path, config: BaseModel, table: pd.DataFrame, results: Mapping[str, Episode], title: str
) -> None:
    dump_config(config, out / "config.yaml")
    atomic_write_json(out / "metrics.json", table.to_dict(orient="index"))
    atomic_write_text(out / "metrics.md", markdown_table(table))
    pnl = pnl_frame(results)
    write_parquet(pnl, out / "pnl.parquet")
    histogram_png(pnl, out / "pnl_hist.png")
    atomic_write_text(out / "report.html", report_html(table, pnl, title))


__all__ = ["pnl_frame", "histogram_png", "report_html", "write_hedge_run"]
