"""One progress callback protocol for every long-running loop (training epochs, backtest blocks,
hedging episodes, sweep points).

Library code only *calls* a :class:`Progress`; drawing (rich progress bars) lives in
:mod:`gradfolio.cli`. A notebook passes any function of the same shape, e.g.
``lambda task, done, total, info="": print(task, done, total, info)``.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """``progress(task, done, total, info)``: ``done`` of ``total`` steps of ``task`` are finished.

    Parameters
    ----------
    task
        What is running (``"training"``, ``"backtest equal_weight"``, ``"refit 2020-01-03"``).
    done, total
        Steps finished and planned (``done`` may start above 0 on a resumed run).
    info
        A short status line (latest losses...), ``""`` if none.
    """

    def __call__(self, task: str, done: int, total: int, info: str = "") -> None: ...


def no_progress(task: str, done: int, total: int, info: str = "") -> None:
    """A :class:`Progress` that reports nothing (the default of library calls)."""


def prefixed(progress: Progress | None, prefix: str) -> Progress:
    """``progress`` with ``prefix`` put before every task name (``None``: :func:`no_progress`).

    Examples
    --------
    >>> seen = []
    >>> prefixed(lambda t, d, n, i="": seen.append((t, d, n)), "backtest ")("ew", 1, 4)
    >>> seen
    [('backtest ew', 1, 4)]
    """
    if progress is None:
        return no_progress

    def report(task: str, done: int, total: int, info: str = "") -> None:
        progress(f"{prefix}{task}", done, total, info)

    return report


__all__ = ["Progress", "no_progress", "prefixed"]
