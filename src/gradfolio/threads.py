"""Torch's intra-op thread count for the duration of a block.

``torch.set_num_threads`` is process-wide: the count applies to every Python thread of the process
while the block runs. Used by the QP solver's thread rule (:mod:`gradfolio.solvers.qp.threads`)
and by the hedging runs (``trainer.threads``), whose trained agents depend on the count
(docs/hedging_agent.md, Reproducibility).
"""

from __future__ import annotations

from types import TracebackType

import torch


class intra_op_threads:  # noqa: N801 (used as a function: ``with intra_op_threads(1): ...``)
    """Run the block with ``count`` intra-op threads (``None``: unchanged), then restore the previous count.

    A class rather than a generator-based context manager: it is entered on every QP solve, where
    the generator's ~2 us per use is a tenth of a batch-1 solve (docs/solvers.md).
    """

    __slots__ = ("_before", "_count")

    def __init__(self, count: int | None) -> None:
        self._count = count
        self._before: int | None = None

    def __enter__(self) -> None:
        if self._count is None:
            return
        before = torch.get_num_threads()
        if before != self._count:
            torch.set_num_threads(self._count)
            self._before = before

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._before is not None:
            torch.set_num_threads(self._before)
            self._before = None


__all__ = ["intra_op_threads"]
