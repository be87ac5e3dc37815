"""Walk-forward backtests of many assets: time and peak memory with and without a memory budget.

Four classical benchmarks (``equal_weight``, ``inverse_volatility``, ``min_variance``, ``eigen``,
float64) are walked forward over synthetic daily returns (a one-factor model, seed 0) of 500 and
2,000 assets, lookback 60 days, rebalanced every 5 days. Every case runs in a fresh Python process
so that its peak resident memory (``ru_maxrss``) is its own; ``base`` is the process's RSS after
the imports and the data, before the backtest.

``memory_budget`` is passed to :func:`gradfolio.backtest.walk_forward` (bytes; ``None`` = the
default, a quarter of the available memory). The rebalance dates of a call are
``memory_budget // (N * N * 8 * MATRIX_FACTOR)``: with 2,000 assets and 1 GiB, 4 dates per call.

``--device`` is passed to :func:`~gradfolio.backtest.walk_forward` (the strategies and the
simulation run there; the synthetic returns are made on the CPU). With ``--device cuda`` a row also
has ``peak_cuda_mib`` (``torch.cuda.max_memory_allocated``) and its peak RSS is the host's only;
the default budget is still a quarter of the host's available memory, not of the GPU's, so give a
budget (``--budgets 4GiB``) to bound the GPU memory.

Usage: ``python benchmarks/bench_scale.py [--device cpu|cuda] [--dates 12] [--assets 500 2000]
[--budgets none 1GiB]``. Writes ``benchmarks/results/scale.json`` (every row records its
``device``; the rows of other cases, devices included, already there are kept); times are wall
seconds, one thread. HRP is left out: its linkage takes about 6 s per date at 500 assets and
more than 5 minutes per date at 2,000 on one shared core (a separate scaling issue).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

STRATEGIES = ["equal_weight", "inverse_volatility", "min_variance", "eigen"]
LOOKBACK, EVERY = 60, 5


def parse_bytes(text: str) -> int | None:
    """``"none"`` -> None, ``"1GiB"`` -> 2**30, ``"512MiB"`` -> 2**29, plain digits -> bytes."""
    if text.lower() == "none":
        return None
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20)):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def child(n_assets: int, n_dates: int, budget: int | None, device: str = "cpu") -> dict[str, float]:
    """One case in this process: returns seconds, peak RSS and the RSS before the backtest (MiB)."""
    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from gradfolio.allocation.classical import PORTFOLIOS
    from gradfolio.backtest import walk_forward
    from gradfolio.seeding import resolve_device

    device = str(resolve_device(device))

    rng = np.random.default_rng(0)
    T = LOOKBACK + n_dates * EVERY
    market = rng.normal(0.0003, 0.01, size=(T, 1))
    values = 0.8 * market + rng.normal(0.0002, 0.015, size=(T, n_assets)) * rng.uniform(0.5, 1.5, n_assets)
    returns = pd.DataFrame(values, index=pd.bdate_range("2020-01-01", periods=T, name="date"),
                           columns=[f"a{i}" for i in range(n_assets)])
    cuda = torch.device(device).type == "cuda"
    if cuda:  # start the CUDA context before the clock and the base RSS, not inside the first strategy's time
        torch.zeros(1, device=device)
        torch.cuda.reset_peak_memory_stats(device)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row: dict[str, float] = {}
    for name in STRATEGIES:  # one walk-forward per strategy, to time each
        start = time.perf_counter()
        result = walk_forward({name: PORTFOLIOS.build(name)}, returns, LOOKBACK, rebalance_every=EVERY, cost=1e-3,
                              device=device, dtype=torch.float64, memory_budget=budget)
        row[f"seconds_{name}"] = time.perf_counter() - start
        assert len(result.turnover) == n_dates
    row["seconds"] = sum(row.values())
    row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["base_rss_mib"] = base
    if cuda:
        row["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates", type=int, default=12, help="Rebalance dates per case.")
    parser.add_argument("--assets", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--budgets", nargs="+", default=["none", "1GiB"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, dates, budget, device = args.child
        print(json.dumps(child(int(n), int(dates), parse_bytes(budget), device)))
        return
    from benchutil import device_arg  # here, so that a child's base RSS has no import of its own

    device = str(device_arg(args.device))  # an absent device stops here, not in the first child
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for n in args.assets:
        for budget in args.budgets:
            out = subprocess.run([sys.executable, __file__, "--child", str(n), str(args.dates), budget, device],
                                 capture_output=True, text=True, env=env, check=True)
            row = {"device": device, "assets": n, "dates": args.dates, "memory_budget": budget,
                   **json.loads(out.stdout.splitlines()[-1])}
            print(json.dumps(row), flush=True)
            rows.append(row)
    path = Path(__file__).parent / "results" / "scale.json"
    path.parent.mkdir(exist_ok=True)
    if path.is_file():  # keep the rows of other cases (device, assets, dates, budget) measured before
        key = ("device", "assets", "dates", "memory_budget")
        new = {tuple(r[k] for k in key) for r in rows}
        old = [{"device": "cpu", **r} for r in json.loads(path.read_text())["rows"]]  # rows from before --device
        rows = [r for r in old if tuple(r[k] for k in key) not in new] + rows
    path.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "strategies": STRATEGIES,
                                "lookback": LOOKBACK, "rebalance_every": EVERY, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
