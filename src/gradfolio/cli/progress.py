"""Rich progress bars for the command line: one adapter from the library's :class:`gradfolio.progress.Progress`.

Library loops (allocation and hedging trainers, backtests, sweeps) only *call* a ``Progress``
(``progress(task, done, total, info)``); :func:`progress_bars` is the one place that draws it:
a context manager yielding such a callable that keeps one rich bar per task name, with the
latest ``info`` beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from gradfolio.progress import Progress, no_progress


@contextmanager
def progress_bars(console: Console | None = None, enabled: bool = True) -> Iterator[Progress]:
    """Draw the calls of the yielded :class:`~gradfolio.progress.Progress` as rich bars, one per task.

    Parameters
    ----------
    console
        Where to draw (default: rich's console).
    enabled
        ``False`` yields :func:`~gradfolio.progress.no_progress` and draws nothing (``--no-progress``).

    Examples
    --------
    >>> with progress_bars(enabled=False) as progress:
    ...     progress("training", 1, 10, "loss 0.5")
    """
    if not enabled:
        yield no_progress
        return
    columns = (TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[info]}"))
    with RichProgress(*columns, console=console, transient=False) as bars:
        tasks: dict[str, int] = {}

        def progress(task: str, done: int, total: int, info: str = "") -> None:
            if task not in tasks:
                tasks[task] = bars.add_task(task, total=total, info="")
            bars.update(tasks[task], completed=done, total=total, info=info)

        yield progress


__all__ = ["progress_bars"]
