"""Root typer application; sub-command groups register themselves in their own modules."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from gradfolio.errors import GradfolioError

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="gradfolio",
    help="Deep-learning portfolio management: allocation networks, backtests and options hedging.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def friendly_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`GradfolioError` raised by ``func`` into one clear line on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except GradfolioError as exc:
            # The message is text, not markup: a column named "[/x]" must print as it is.
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _register() -> None:
    # Imported for their side effect of adding commands to ``app``.
    from gradfolio.cli import backtest as _backtest  # noqa: F401
    from gradfolio.cli import data as _data  # noqa: F401
    from gradfolio.cli import hedge as _hedge  # noqa: F401
    from gradfolio.cli import hedge_agent as _hedge_agent  # noqa: F401


def main() -> None:
    """Entry point of ``python -m gradfolio``."""
    app()


_register()
