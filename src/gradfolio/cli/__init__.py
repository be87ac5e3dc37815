"""The ``gradfolio`` command-line tool (also ``python -m gradfolio``).

A thin layer over the library: every command calls the same functions a notebook would. Bad
input ends in one red line naming the problem and the fix (exit code 2), never a traceback.
"""

from __future__ import annotations

from gradfolio.cli.main import app, build_app, main

__all__ = ["app", "build_app", "main"]
