"""The ``gradfolio`` application: the root of :mod:`gradfolio.cli.app` with every command module registered.

Registration goes one way: this module imports the command modules and calls their
``register``; they import only :mod:`gradfolio.cli.app` (consoles, error handling), never this
module nor each other.
"""

from __future__ import annotations

import typer

from gradfolio.cli import backtest, data, hedge, hedge_agent, predict, tune
from gradfolio.cli.app import root_app


def build_app() -> typer.Typer:
    """A fresh ``gradfolio`` application with all commands: ``demo``, ``backtest``, ``experiment``, ``tune``, ``predict``, ``data ...``, ``hedge ...``."""
    app = root_app()
    backtest.register(app)
    predict.register(app)
    tune.register(app)
    data.register(app)
    hedge_app = hedge.register(app)
    hedge_agent.register(hedge_app)
    return app


app = build_app()


def main() -> None:
    """Entry point of ``gradfolio`` and ``python -m gradfolio``."""
    app()


__all__ = ["app", "build_app", "main"]
