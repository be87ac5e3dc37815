"""Settings shared by the benchmark scripts.

:func:`keep_freed_memory` makes glibc keep freed blocks in the heap instead of returning them to
the operating system. Small-tensor code (a batch of 32 solves of 50 x 50 systems) allocates and
frees many ~0.5 MB tensors; by default each one is a fresh ``mmap`` whose pages fault on first
touch, which costs ~2 us per 4 KiB page on the virtual machines these benchmarks were run on
(a few ms per solve, more than the arithmetic). PyTorch's CPU performance guide recommends a
caching allocator (jemalloc/tcmalloc) for the same reason. The setting is made once, at the
start of a run, so it applies to every contender in that run alike.

:func:`best_of_rounds` times contenders in interleaved rounds and keeps each one's best round,
so that load from elsewhere on a shared machine does not decide a ratio.

:func:`device_arg` turns every script's ``--device`` into a ``torch.device`` and stops the script
with a clear message when the device is unknown or absent (``--device cuda`` without CUDA).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Mapping
from typing import Any

import torch

from gradfolio.errors import ConfigError
from gradfolio.seeding import resolve_device

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


def best_of_rounds(
    measures: Mapping[str, Callable[[], tuple[float, Any]]], rounds: int, best: Callable = min, context: str = ""
) -> dict[str, tuple[float, Any]]:
    """Call every measure once per round, interleaved, and keep each one's best result.

    Parameters
    ----------
    measures
        ``name -> measure``; a measure returns ``(value, payload)`` (e.g. seconds and the output).
    rounds
        Rounds of calls.
    best
        ``min`` (times) or ``max`` (throughputs), applied to the values.
    context
        Appended to the name in the message of a failing measure.

    Returns
    -------
    ``name -> (value, payload)`` of the best round; ``(nan, None)`` for a measure that failed in
    every round (a peer failing on this device or dtype is reported, not fatal).
    """
    results: dict[str, list[tuple[float, Any]]] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            try:
                results[name].append(measure())
            except Exception as exc:  # noqa: BLE001 - any peer failure is a result
                print(f"{name}{context}: failed ({type(exc).__name__}: {exc})")
    return {name: best(r, key=lambda t: t[0]) if r else (float("nan"), None) for name, r in results.items()}


def device_arg(name: str) -> torch.device:
    """The ``--device`` argument ``name`` (``cpu``, ``cuda``, ``cuda:1``) as a ``torch.device``.

    Exits the script (``SystemExit`` with the reason, exit status 1) when ``name`` is not a torch
    device or is a CUDA device on a machine without CUDA, instead of failing later in a solver.
    """
    try:
        return resolve_device(name)
    except ConfigError as exc:
        raise SystemExit(f"--device {name}: {exc}") from None
