"""How many intra-op threads a QP solve uses.

The solver's work is many small tensor operations and small batched factorizations. Below a
size, a second intra-op thread gains nothing (torch runs such operations on one thread anyway,
or spends the gain on synchronization), and when another process keeps a core busy every
parallel region waits for the thread that was descheduled: on a 2-core machine with one busy
process, a batch-32 solve on 2 threads ran 5-30x slower than on 1 (docs/solvers.md).

The rule (:func:`auto_threads`): a solve whose work ``B * n^2`` (batch times the squared number of
variables, the size of its ``Q``) is below :data:`SMALL_WORK` runs on one thread; larger solves
keep torch's setting. :func:`intra_op_threads` sets the count for the duration of a solve and
restores the previous one afterwards (``torch.set_num_threads`` costs ~1 us). It is applied by
:func:`gradfolio.solvers.qp.solve_qp` in its forward and backward passes
(``QPSettings(threads="auto")``, the default; ``threads=None`` leaves torch's setting alone, an
integer fixes the count).

``torch.set_num_threads`` is process-wide: a solve changes the count seen by other Python threads
of the same process while it runs.
"""

from __future__ import annotations

from typing import Literal

from gradfolio.errors import ConfigError
from gradfolio.threads import intra_op_threads

#: Work ``B * n^2`` below which a solve runs on one intra-op thread: every size of the solver
#: benchmark (up to 750 variables, i.e. n = 250 with leverage and turnover, at batch 256). The
#: solver's operations are too small for torch to split across threads; where a second thread
#: helps (large batched matrix products), larger solves keep torch's setting (docs/solvers.md).
SMALL_WORK = 256 * 750**2 + 1

Threads = int | Literal["auto"] | None


def auto_threads(batch: int, n: int, setting: Threads = "auto") -> int | None:
    """The intra-op thread count for a solve of ``batch`` problems with ``n`` variables, or ``None``
    to keep torch's current setting.

    ``setting``: ``"auto"`` (1 below :data:`SMALL_WORK`, else ``None``), ``None`` (always ``None``),
    or a positive integer (returned as is); anything else raises :class:`ConfigError`.
    """
    if setting is None:
        return None
    if setting == "auto":
        return 1 if batch * n * n < SMALL_WORK else None
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ConfigError(f"QPSettings.threads={setting!r}; use 'auto', None (torch's setting) or a positive integer.")
    return setting


__all__ = ["SMALL_WORK", "Threads", "auto_threads", "intra_op_threads"]
