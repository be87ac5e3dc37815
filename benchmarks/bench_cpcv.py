"""CPCV of every classical portfolio vs one walk-forward of them.

On the bundled 20 S&P 500 stocks (``--start`` to 2022, lookback 60, rebalanced every 5 days,
10 bps costs), all classical portfolios of :data:`gradfolio.allocation.classical.PORTFOLIOS`:

- ``walk_forward``: one :func:`gradfolio.backtest.walk_forward` of all of them over every
  decision day (what ``gradfolio backtest`` does for its test period);
- ``cpcv``: :func:`gradfolio.experiments.backtest.cv.run_cv` with 6 groups / 2 test groups
  (15 splits, 5 paths), serial executor, into a fresh folder: classical portfolios do not train,
  so each is walked forward over each of the 6 groups once (78 tasks, each checkpointed as
  ``result.json``) and the groups are recombined into the 5 paths; plus the outputs
  (``cv.json``, ``cv_returns.parquet``, the box plot).

Both run in one process, one thread. Prints a table and the ratio; writes
``benchmarks/results/cpcv.json`` (``cpcv_cuda.json`` with ``--device cuda``).

``--device`` is the ``device`` of both: passed to the walk-forward and set as the config's
``device``, which every CV task's walk-forward uses. The loading of the data, the split plan and
the outputs of ``run_cv`` stay on the CPU.

The shortest run: ``--start 2020-09-01`` (585 days); from 2021-01-01 the 6 groups are too short
for the purge and embargo and ``run_cv`` stops with a ``DataError``.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_cpcv.py [--device cpu|cuda] [--start 2013-01-01] [--repeats 1]``
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from benchutil import device_arg

from gradfolio.backtest import ProportionalCost, walk_forward
from gradfolio.experiments.backtest.config import BacktestConfig
from gradfolio.experiments.backtest.cv import run_cv
from gradfolio.experiments.backtest.run import (
    benchmark_params,
    build_benchmarks,
    load_returns,
)
from gradfolio.io import atomic_write_json

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", default="2013-01-01")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = device_arg(args.device)
    torch.set_num_threads(1)
    config = BacktestConfig.model_validate({
        "device": str(device),
        "data": {"start": args.start, "lookback": 60}, "backtest": {"rebalance_every": 5, "cost_bps": 10},
        "network": {"enabled": False}, "tracking": False,
        "cv": {"method": "cpcv", "n_folds": 6, "n_test_folds": 2, "executor": "serial"},
    })
    returns = load_returns(config)
    params = benchmark_params(config)

    def one_walk() -> float:
        t = time.perf_counter()
        walk_forward(build_benchmarks(config), returns, 60, rebalance_every=5, cost=ProportionalCost.from_bps(10),
                     device=device, dtype=torch.float64, infeasible="keep")
        return time.perf_counter() - t

    def cpcv() -> float:
        folder = Path(tempfile.mkdtemp(prefix="bench_cpcv."))
        try:
            t = time.perf_counter()
            table = run_cv(config, returns, folder, None, params)
            elapsed = time.perf_counter() - t
            assert table["path"].nunique() == 5 and table["strategy"].nunique() == len(params)
            return elapsed
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    walks, cvs = [], []
    for _ in range(args.repeats):  # interleaved rounds; the best of each is kept
        walks.append(one_walk())
        cvs.append(cpcv())
    wf, cv = min(walks), min(cvs)
    ratio = cv / wf
    rows = [{"contender": "walk_forward (one, all classical)", "seconds": wf},
            {"contender": "cpcv 6 groups / 2 test (15 splits, 5 paths)", "seconds": cv}]
    print(f"{len(params)} classical portfolios, {returns.shape[1]} assets, {len(returns)} days from {args.start}, "
          f"device {device}")
    for r in rows:
        print(f"  {r['contender']:<48} {r['seconds']:8.2f} s")
    print(f"  ratio cpcv / walk_forward: {ratio:.2f}x (goal: within 3x)")
    meta = {"device": str(device), "start": args.start, "days": len(returns), "assets": returns.shape[1],
            "portfolios": sorted(params), "threads": 1, "repeats": args.repeats,
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__}
    suffix = "" if device.type == "cpu" else f"_{device.type}"
    atomic_write_json(HERE / "results" / f"cpcv{suffix}.json", {"meta": meta, "rows": rows, "ratio": ratio})


if __name__ == "__main__":
    main()
