"""``gradfolio data ...``: inspect price data before using it."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from gradfolio.cli.app import console, friendly_errors


@friendly_errors
def info(
    data: str = typer.Option("sp500", "--data", help="'sp500' (bundled) or the path of a CSV/Parquet price table."),
    ffill_limit: int = typer.Option(
        5, help="Longest run of missing prices that is forward-filled (an integer >= 0; 0 forbids gaps)."
    ),
) -> None:
    """Validate a price table and print its assets, date range and missing data."""
    # imported here, not with the module: `gradfolio --help` must not load pandas or torch
    from gradfolio.data import load_prices

    prices = load_prices(data, ffill_limit=ffill_limit)
    filled = prices.attrs.get("filled", {})
    first, last = prices.index[0].date(), prices.index[-1].date()
    console.print(
        f"[bold]{escape(data)}[/]: {prices.shape[1]} assets, {len(prices)} dates from {first} to {last}, "
        f"{sum(filled.values())} missing prices forward-filled",
        soft_wrap=True,  # one line: the terminal wraps it, so a long path stays copyable
    )
    table = Table("asset", "first price", "last price", "missing (filled)", "min price", "max price")
    for col in prices.columns:
        s = prices[col]
        table.add_row(
            escape(col), f"{s.iloc[0]:.4g}", f"{s.iloc[-1]:.4g}", str(filled.get(col, 0)),
            f"{s.min():.4g}", f"{s.max():.4g}",
        )
    console.print(table)


def register(app: typer.Typer) -> typer.Typer:
    """Add the ``data`` group (``data info``) to ``app``; returns the group."""
    data_app = typer.Typer(help="Inspect and validate market data.", no_args_is_help=True)
    data_app.command("info")(info)
    app.add_typer(data_app, name="data")
    return data_app
