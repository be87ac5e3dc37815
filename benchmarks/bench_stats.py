"""Block bootstrap of the Sharpe ratio: 10,000 resamples x 13 strategies x 2,500 days.

Times :func:`gradfolio.stats.bootstrap_ci` (arch's stationary / circular index draws, Politis-White
block length, the statistic batched in torch) for percentile and BCa intervals, and, for scale,
``arch``'s own ``apply`` (a Python loop calling the statistic once per resample) on 1,000 of the
resamples. Prints a table and writes ``benchmarks/results/stats.json`` (``stats_cuda.json`` with
``--device cuda``).

``--device`` is where :func:`~gradfolio.stats.bootstrap_ci` computes the statistic of the resamples
(and the jackknife of BCa); the block length and the resample indices are computed with ``arch``
on the CPU whatever the device, and ``arch``'s ``apply`` is NumPy, so its row is a CPU time.
Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_stats.py [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from arch.bootstrap import StationaryBootstrap
from benchutil import device_arg

from gradfolio.io import atomic_write_json
from gradfolio.stats import bootstrap_ci

T, S, B, ARCH_B = 2_500, 13, 10_000, 1_000


def data(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    common = rng.standard_normal((T, 1))
    x = 0.0004 + 0.01 * (0.7 * common + 0.7 * rng.standard_normal((T, S)))
    return pd.DataFrame(x, columns=[f"s{i}" for i in range(S)])


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = device_arg(args.device)
    returns = data()
    rows = {}
    for method in ("stationary", "circular"):
        for interval in ("percentile", "bca"):
            best = min((timed(lambda: bootstrap_ci(returns, level=0.95, interval=interval, n_resamples=B,
                                                   method=method, seed=1, device=device)) for _ in range(2)),
                       key=lambda t: t[0])
            rows[f"gradfolio_{method}_{interval}"] = {"seconds": best[0], "resamples": B,
                                                     "block_length": float(best[1]["block_length"].iloc[0])}
    x = returns.to_numpy()
    sharpe = lambda a: a.mean(0) / a.std(0, ddof=1) * math.sqrt(252)  # noqa: E731
    sec, _ = timed(lambda: StationaryBootstrap(rows["gradfolio_stationary_percentile"]["block_length"], x,
                                               seed=1).apply(sharpe, ARCH_B))
    rows["arch_apply_stationary"] = {"seconds": sec, "resamples": ARCH_B, "seconds_per_10000": sec * B / ARCH_B}
    threads = torch.get_num_threads()
    print(f"T={T} S={S} B={B}  device={device}  torch threads={threads}  "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"{'contender':36s} {'resamples':>9s} {'seconds':>8s}")
    for name, row in rows.items():
        print(f"{name:36s} {row['resamples']:9d} {row['seconds']:8.2f}")
    out = {"T": T, "strategies": S, "resamples": B, "device": str(device), "torch_threads": threads,
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpu": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "results": rows}
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    atomic_write_json(Path(__file__).parent / "results" / f"stats{suffix}.json", out)


if __name__ == "__main__":
    main()
