"""Backtest report: one self-contained HTML page (plotly) and PNG figures (matplotlib).

:func:`write_report` writes, atomically, into a run folder::

    report.html     equity curves, drawdowns, turnover, one weight heatmap per strategy and the
                    metrics table; plotly.js is inlined so the page renders offline
    metrics.md      the metrics table in markdown
    equity.png      wealth of every strategy (log scale)
    drawdowns.png   drawdown of every strategy
    weights.png     weight heatmaps (assets x rebalance dates), one panel per strategy
    turnover.png    turnover per rebalance
    sharpe_ci.png   Sharpe ratios with their bootstrap confidence intervals (with a stats table)

With the statistics table of :mod:`gradfolio.experiments.backtest.evaluation` the page also shows
the Sharpe ratios as bars with their confidence intervals as error bars and the table of Sharpe
differences to 1/N (confidence interval, Ledoit-Wolf p-value, PSR, DSR); with a CPCV table
(:mod:`gradfolio.experiments.backtest.cv`) a box plot of the out-of-sample Sharpe ratios per path.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gradfolio.backtest import BacktestResult
from gradfolio.experiments.outputs import html_page, markdown_table, pyplot, save_figure
from gradfolio.io import atomic_write_text

PERCENT_COLUMNS = {
    "annualized_return", "annualized_volatility", "max_drawdown", "var_95", "cvar_95", "total_cost",
}


def _figures(result: BacktestResult) -> list[tuple[str, str, object]]:
    """``(id, heading, plotly figure)`` for every interactive chart of the page."""
    import plotly.graph_objects as go

    wealth, dd = result.wealth(), result.drawdowns()
    equity = go.Figure([go.Scatter(x=wealth.index, y=wealth[c], name=c, mode="lines") for c in wealth])
    equity.update_layout(yaxis_type="log", yaxis_title="wealth (start = 1, log scale)", height=480)
    drawdown = go.Figure([go.Scatter(x=dd.index, y=-dd[c], name=c, mode="lines") for c in dd])
    drawdown.update_layout(yaxis_title="drawdown", yaxis_tickformat=".0%", height=420)
    turn = go.Figure(
        [go.Scatter(x=result.turnover.index, y=result.turnover[c], name=c, mode="lines") for c in result.turnover]
    )
    turn.update_layout(yaxis_title="turnover per rebalance", height=380)
    figs: list[tuple[str, str, object]] = [
        ("equity", "Equity curves", equity), ("drawdowns", "Drawdowns", drawdown), ("turnover", "Turnover", turn)
    ]
    for i, name in enumerate(result.strategies):
        w = result.weights[name]
        heat = go.Figure(
            go.Heatmap(z=w.T.to_numpy(), x=w.index, y=list(w.columns), colorscale="Viridis", colorbar_title="weight")
        )
        heat.update_layout(height=max(300, 18 * w.shape[1] + 120), margin={"t": 30})
        figs.append((f"weights-{i}", f"Weights: {name}", heat))
    return figs


def metrics_html(table: pd.DataFrame) -> str:
    """The metrics table as an HTML ``<table id="metrics">`` (fractions shown in percent)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [table.index.name or "strategy", *table.columns])
    rows = []
    for name, row in table.iterrows():
        cells = [f"<th>{html.escape(str(name))}</th>"]
        for col, value in row.items():
            text = f"{100 * value:.2f}%" if col in PERCENT_COLUMNS else f"{value:.3f}"
            cells.append(f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table id='metrics'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def sharpe_figure(stats: pd.DataFrame) -> Any:
    """Plotly bars of the annualized Sharpe ratios with their confidence intervals as error bars."""
    import plotly.graph_objects as go

    order = stats.sort_values("sharpe", ascending=False)
    bars = go.Bar(
        x=[str(i) for i in order.index], y=order["sharpe"],
        error_y={"type": "data", "array": order["sharpe_upper"] - order["sharpe"],
                 "arrayminus": order["sharpe"] - order["sharpe_lower"], "visible": True},
    )
    fig = go.Figure([bars])
    level = stats.attrs.get("level", 0.95)
    fig.update_layout(yaxis_title=f"annualized Sharpe ({100 * level:g}% bootstrap CI)", height=420)
    return fig


def stats_html(stats: pd.DataFrame) -> str:
    """The Sharpe / difference-to-1/N table as an HTML ``<table id="stats">``."""
    level = 100 * stats.attrs.get("level", 0.95)
    head = ["strategy", "Sharpe", f"{level:g}% CI", "vs 1/N", f"{level:g}% CI", "p-value", "PSR", "DSR"]
    rows = []

    def ci(lo: float, hi: float) -> str:
        return "" if pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]"

    for name, r in stats.sort_values("sharpe", ascending=False).iterrows():
        diff = "" if pd.isna(r["diff"]) else f"{r['diff']:+.3f}"
        p = "" if pd.isna(r["diff_pvalue"]) else f"{r['diff_pvalue']:.3f}"
        cells = [f"{r['sharpe']:.3f}", ci(r["sharpe_lower"], r["sharpe_upper"]), diff,
                 ci(r["diff_lower"], r["diff_upper"]), p, f"{r['psr']:.3f}", f"{r['dsr']:.3f}"]
        rows.append(f"<tr><th>{html.escape(str(name))}</th>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table id='stats'><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _stats_block(stats: pd.DataFrame) -> str:
    a = stats.attrs
    plot = sharpe_figure(stats).to_html(full_html=False, include_plotlyjs=False, div_id="sharpe-ci")
    return (
        f"<h2>Is it better than 1/N?</h2>{plot}{stats_html(stats)}"
        f"<p>Sharpe ratios annualized, with stationary-bootstrap percentile intervals; 'vs 1/N' is the "
        f"difference of annualized Sharpe ratios to {html.escape(str(a.get('benchmark')))}, with the "
        "Ledoit-Wolf HAC interval and two-sided p-value; PSR is the probability that the true Sharpe "
        f"ratio exceeds zero, DSR the same deflated for {a.get('n_trials')} strategies tried.</p>"
    )


def cv_figure(cv: pd.DataFrame) -> Any:
    """Plotly box plots of the out-of-sample Sharpe ratios (one point per CPCV path and seed) per strategy."""
    import plotly.graph_objects as go

    order = cv.groupby("strategy", sort=False)["sharpe"].median().sort_values(ascending=False).index
    fig = go.Figure([go.Box(y=cv.loc[cv["strategy"] == s, "sharpe"], name=str(s), boxpoints="all")
                     for s in order])
    fig.update_layout(yaxis_title="out-of-sample Sharpe per path (annualized)", height=440, showlegend=False)
    return fig


def report_html(
    result: BacktestResult,
    title: str = "Walk-forward backtest",
    notes: str = "",
    stats: pd.DataFrame | None = None,
    cv: pd.DataFrame | None = None,
) -> str:
    """The self-contained HTML page (plotly.js inlined once); ``stats`` adds the 1/N comparison,
    ``cv`` (long table ``strategy, seed, path, sharpe``) the CPCV Sharpe distribution."""
    from plotly.offline import get_plotlyjs

    blocks = []
    if stats is not None:
        blocks.append(_stats_block(stats))
    if cv is not None and len(cv):
        plot = cv_figure(cv).to_html(full_html=False, include_plotlyjs=False, div_id="cv-sharpe")
        blocks.append(f"<h2>Cross-validated out-of-sample Sharpe ratios</h2>{plot}")
    for div_id, heading, fig in _figures(result):
        plot = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)  # type: ignore[attr-defined]
        blocks.append(f"<h2>{html.escape(heading)}</h2>{plot}")
    period = f"{result.returns.index[0].date()} to {result.returns.index[-1].date()}"
    body = (
        f"<p>Out of sample, {period}: {len(result.returns)} days, "
        f"{len(result.turnover)} rebalances. Net daily returns after proportional costs.</p>"
        f"{f'<p>{html.escape(notes)}</p>' if notes else ''}"
        f"{''.join(f'<p><strong>Warning:</strong> {html.escape(w)}</p>' for w in result.warnings())}"
        f"<h2>Metrics</h2>{metrics_html(result.metrics())}"
        f"<p>Annualized with {result.periods_per_year:g} periods per year; drawdown, VaR and CVaR are positive "
        "losses; turnover is sum |w_after - w_before| per rebalance; total_cost is the sum of costs paid as "
        "fractions of wealth.</p>"
        f"{''.join(blocks)}"
    )
    return html_page(title, body, head=f"<script type='text/javascript'>{get_plotlyjs()}</script>")


def write_pngs(result: BacktestResult, folder: str | os.PathLike[str]) -> list[Path]:
    """Write ``equity.png``, ``drawdowns.png``, ``turnover.png`` and ``weights.png`` to ``folder``."""
    plt = pyplot()
    out = Path(folder)
    paths = []
    for name, frame, ylabel, log in (
        ("equity", result.wealth(), "wealth (start = 1)", True),
        ("drawdowns", -result.drawdowns(), "drawdown", False),
        ("turnover", result.turnover, "turnover per rebalance", False),
    ):
        fig, ax = plt.subplots(figsize=(10, 5))
        frame.plot(ax=ax, lw=1.0)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        paths.append(save_figure(fig, out / f"{name}.png", dpi=110))
    names = result.strategies
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        w = result.weights[name]
        ax.imshow(w.T.to_numpy(), aspect="auto", cmap="viridis", vmin=0.0, vmax=max(1e-9, float(np.nanmax(w))))
        ax.set_title(name, fontsize=9)
        ax.set_yticks(range(w.shape[1]), list(w.columns), fontsize=5)
        ticks = np.linspace(0, len(w) - 1, num=min(4, len(w)), dtype=int)
        ax.set_xticks(ticks, [str(w.index[t].date()) for t in ticks], fontsize=6)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    paths.append(save_figure(fig, out / "weights.png", dpi=110))
    return paths


def sharpe_png(stats: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Bars of the Sharpe ratios with their confidence intervals as error bars (matplotlib)."""
    plt = pyplot()
    order = stats.sort_values("sharpe", ascending=False)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(order)), 4.0))
    err = [order["sharpe"] - order["sharpe_lower"], order["sharpe_upper"] - order["sharpe"]]
    ax.bar(range(len(order)), order["sharpe"], yerr=err, capsize=3, color="tab:blue")
    ax.set_xticks(range(len(order)), [str(i) for i in order.index], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(f"annualized Sharpe ({100 * stats.attrs.get('level', 0.95):g}% CI)")
    ax.axhline(0.0, color="black", lw=0.6)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def write_report(
    result: BacktestResult,
    folder: str | os.PathLike[str],
    title: str = "Walk-forward backtest",
    notes: str = "",
    stats: pd.DataFrame | None = None,
    cv: pd.DataFrame | None = None,
    figures: bool = True,
) -> Path:
    """Write ``report.html``, ``metrics.md`` and (with ``figures``) the PNG figures into ``folder``; returns the HTML path.

    The HTML page holds the same charts, interactive; ``figures=False`` skips :func:`write_pngs` and
    its matplotlib import (``figures: false`` in a backtest config, ``--no-figures`` on the command line).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    if figures:
        write_pngs(result, out)
        if stats is not None:
            sharpe_png(stats, out / "sharpe_ci.png")
    atomic_write_text(out / "metrics.md", markdown_table(result.metrics(), digits=4))
    return atomic_write_text(out / "report.html", report_html(result, title, notes, stats, cv))


__all__ = ["metrics_html", "stats_html", "sharpe_figure", "cv_figure", "report_html", "write_pngs", "sharpe_png",
           "write_report"]
