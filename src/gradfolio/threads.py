"""Torch's intra-op thread count for the duration of a block.

``torch.set_num_threads`` is process-wide: the count applies to every Python thread of the process
while the block runs. Used by the QP solver's thread rule (:mod:`gradfolio.solvers.qp.threads`)
and by the hedging runs (``trainer.threads``), whose trained agents depend on the count
(docs/hedging_agent.md, Reproducibility).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads (``None``: unchanged), then restore the previous count."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


__all__ = ["intra_op_threads"]
