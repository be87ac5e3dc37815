"""Error hierarchy of gradfolio.

Every error a user can provoke with bad input is a subclass of :class:`GradfolioError`.
Messages name the input, the place (file, column, row, parameter) and the fix, so that the
command-line tool can print them as one clear line instead of a traceback.
"""

from __future__ import annotations


class GradfolioError(Exception):
    """Base class of every error gradfolio raises on bad input or a failed computation."""


class DataError(GradfolioError, ValueError):
    """Market data that cannot be used as given (file, column, row and the fix are named)."""


class ConfigError(GradfolioError, ValueError):
    """A configuration value or argument that is out of range or inconsistent."""


class InfeasibleError(GradfolioError, ValueError):
    """A set of constraints that no portfolio can satisfy.

    Parameters
    ----------
    message
        What is infeasible, where, and the fix.
    rows
        For a batch, the indices of the elements that have no solution (``None``: not known or
        not batched); the walk-forward engine keeps the previous weights there.
    """

    def __init__(self, message: str, rows: list[int] | None = None) -> None:
        super().__init__(message)
        self.rows = rows


class SolverError(GradfolioError, RuntimeError):
    """A numerical solver that failed to converge (the failing batch element is named)."""


__all__ = ["GradfolioError", "DataError", "ConfigError", "InfeasibleError", "SolverError"]
