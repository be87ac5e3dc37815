"""What every command module shares: the consoles, :func:`friendly_errors` and the root application.

This module imports none of the command modules: each of them defines ``register(app)``, and
:mod:`gradfolio.cli.main` builds the application by calling them (commands are registered in one
direction, from ``main`` down).
"""

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


def root_app() -> typer.Typer:
    """The ``gradfolio`` application without commands (:func:`gradfolio.cli.main.build_app` adds them)."""
    return typer.Typer(
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


def parse_seeds(text: str) -> list[int]:
    """``"0 1 2"`` / ``"0,1,2"`` -> ``[0, 1, 2]``; a ``ConfigError`` naming ``--seeds`` otherwise."""
    from gradfolio.errors import ConfigError

    try:
        return [int(s) for s in text.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: pass integers separated by spaces or commas, e.g. --seeds '0 1 2'.") from None


__all__ = ["parse_seeds", "console", "err_console", "friendly_errors", "root_app"]
