"""``gradfolio predict --run RUN --data prices.csv``: the target weights of the next rebalance, and the trades."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from gradfolio.cli.app import console, err_console, friendly_errors
from gradfolio.errors import ConfigError


@friendly_errors
def predict(
    run: Path = typer.Option(..., "--run", help="Run folder of `gradfolio backtest`/`demo` (or one strategy bundle)."),
    data: str = typer.Option(..., "--data", help="Price table (CSV/Parquet, one column per ticker) or 'sp500'."),
    strategy: str = typer.Option(None, "--strategy", help="Strategy label in the run (default: the network)."),
    as_of: str = typer.Option(None, "--as-of", help="Decision date YYYY-MM-DD (default: the last date of --data)."),
    holdings: Path = typer.Option(
        None, "--holdings", help="Current holdings CSV: 'ticker,weight' or 'ticker,value' or 'ticker,shares' (+ a CASH row)."
    ),
    capital: float = typer.Option(None, "--capital", help="Portfolio wealth in currency (trades in currency)."),
    cost_bps: float = typer.Option(None, "--cost-bps", help="Cost per unit of turnover in bps (default: the run's)."),
    align: bool = typer.Option(False, "--align", help="Drop tickers of --data the strategy was not trained on."),
    out: Path = typer.Option(None, "--out", help="Folder to write predict.csv and predict.json into."),
) -> None:
    """Print the strategy's target weights for the next rebalance; with holdings, the trades and their cost."""
    from gradfolio.allocation.strategy import load_strategy, read_holdings, rebalance_plan
    from gradfolio.costs import ProportionalCost
    from gradfolio.data import load_prices
    from gradfolio.experiments.run_folder import RunFolder, check_run_folder
    from gradfolio.io import atomic_write_text

    if out is not None:  # a foreign folder is refused before any work
        check_run_folder(out, "predict")
    if capital is not None and not capital > 0:
        raise ConfigError(f"--capital {capital:g}: give the portfolio's wealth in currency, a positive number.")
    saved = load_strategy(run, strategy)
    prices = load_prices(data)
    held_now = None
    if holdings is not None and getattr(saved.model, "needs_holdings", False) is True:  # EIIE sees what it holds
        decided = prices.loc[:as_of] if as_of is not None else prices
        held_now = read_holdings(holdings, saved.assets, capital=capital, last_prices=decided.iloc[-1]).weights
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target = saved.predict(prices, as_of=as_of, prices=True, align=align, source=data, holdings=held_now)
    for w in caught:
        err_console.print(f"[yellow]warning:[/] {escape(str(w.message))}", highlight=False, soft_wrap=True)
    decision = target.attrs["as_of"]
    rate_bps = cost_bps if cost_bps is not None else (saved.spec.cost_bps or 0.0)
    cost = ProportionalCost.from_bps(rate_bps)
    current, wealth = None, capital
    if holdings is not None:
        last = prices.loc[:decision].iloc[-1]
        held = read_holdings(holdings, saved.assets, capital=capital, last_prices=last)
        current, wealth = held.weights, held.capital
    plan = rebalance_plan(target, current, cost, wealth)

    console.print(
        f"{escape(saved.label)}: target weights decided on {decision.date()} (trade {saved.gap} day(s) later), "
        f"from {escape(str(run))}",
        highlight=False, soft_wrap=True,
    )
    view = Table(box=box.SIMPLE, pad_edge=False)
    columns = ["current", "target", "trade"] + (["trade_value"] if wealth is not None else [])
    view.add_column("ticker", no_wrap=True)
    for col in columns:
        view.add_column(col, justify="right")
    for ticker, row in plan.table.iterrows():
        cells = [f"{row[c]:.4f}" for c in ("current", "target", "trade")]
        if wealth is not None:
            cells.append(f"{row['trade_value']:,.2f}")
        view.add_row(escape(str(ticker)), *cells)
    console.print(view)
    summary = (
        f"cash {plan.cash_before:.4f} -> {plan.cash_after:.4f}; turnover {plan.turnover:.4f}; "
        f"estimated cost {plan.cost:.6f} of wealth at {rate_bps:g} bps"
    )
    if wealth is not None:
        summary += f" = {plan.cost_value:,.2f} on capital {wealth:,.2f}"
    console.print(summary, soft_wrap=True)
    if out is not None:
        record = {
            "run": str(run), "strategy": saved.label, "data": data, "as_of": str(decision.date()),
            "gap": saved.gap, "cost_bps": rate_bps, "capital": wealth, "turnover": plan.turnover,
            "cost": plan.cost, "cost_value": plan.cost_value, "cash_before": plan.cash_before,
            "cash_after": plan.cash_after, "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "weights": {str(k): float(v) for k, v in plan.table["target"].items()},
            "trades": {str(k): float(v) for k, v in plan.table["trade"].items()},
        }
        csv_text = plan.table.rename_axis("ticker").to_csv(float_format="%.17g")
        text = json.dumps(record, indent=2) + "\n"
        with RunFolder(out, "predict") as folder:  # a new, empty or earlier predict folder; staged, then published
            atomic_write_text(folder.stage / "predict.csv", csv_text)
            atomic_write_text(folder.stage / "predict.json", text)
            folder.publish()
        console.print(f"written: {out / 'predict.csv'}, {out / 'predict.json'}")


def register(app: typer.Typer) -> None:
    """Add ``predict`` to ``app``."""
    app.command("predict")(predict)
