"""Settings shared by the benchmark scripts.

:func:`keep_freed_memory` makes glibc keep freed blocks in the heap instead of returning them to
the operating system. Small-tensor code (a batch of 32 solves of 50 x 50 systems) allocates and
frees many ~0.5 MB tensors; by default each one is a fresh ``mmap`` whose pages fault on first
touch, which costs ~2 us per 4 KiB page on the virtual machines these benchmarks were run on
(a few ms per solve, more than the arithmetic). PyTorch's CPU performance guide recommends a
caching allocator (jemalloc/tcmalloc) for the same reason. The setting is made once, at the
start of a run, so it applies to every contender in that run alike.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Raise glibc's mmap threshold to its maximum (32 MiB) and its trim threshold to 1 GiB.

    Returns ``False`` (and changes nothing) where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))
