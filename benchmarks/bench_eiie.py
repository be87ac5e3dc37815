"""EIIE training throughput: gradfolio's OSBLTrainer vs a straightforward PyTorch port of PGPortfolio.

Shapes of PGPortfolio's default config: 11 coins, a window of 50 periods, close/high/low
(3 features), batches of 109 consecutive periods, commission 0.25%, Adam. Synthetic prices
(a seeded geometric random walk, high/low around the close), 2000 periods. One step = one OSBL
batch: sampling, forward, reward, backward, Adam, portfolio-vector-memory update. Rows:

- ``pgportfolio port`` -- :mod:`pgportfolio_port` (the authors' network and training step, line
  for line in PyTorch; within-batch approximate commission factor);
- ``gradfolio eiie approx`` -- :class:`gradfolio.allocation.OSBLTrainer` with
  ``method="approx"`` (the same mathematics), on the same price windows (``inputs="prices"``);
- ``gradfolio eiie iterative`` -- the reward with eq. (14)'s commission factor solved by fixed
  point (what gradfolio trains with by default);
- ``gradfolio eiie close-only`` -- ``inputs="returns"``: close prices rebuilt from a window of
  returns inside the network (gradfolio's backtest path), iterative commission factor.

Samples per CPU second of the process (steps x batch / ``time.process_time``; less sensitive to
a shared machine than wall time, also reported), best of ``--rounds`` interleaved rounds (the
round with the most samples per CPU second, its wall rate beside it), one thread
(``torch.set_num_threads(1)``); the load average is printed and saved with the results.

Usage: ``python benchmarks/bench_eiie.py [--steps 60] [--rounds 7] [--dtype float32|float64]``.
Writes ``benchmarks/results/eiie.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from benchutil import best_of_rounds, device_arg, keep_freed_memory
from pgportfolio_port import PGPortfolioAgent

from gradfolio.allocation import EIIE, OSBLTrainer, price_windows
from gradfolio.data import make_windows, to_returns
from gradfolio.io import atomic_write_json

COINS, WINDOW, BATCH, PERIODS, COMMISSION, BETA, LR = 11, 50, 109, 2000, 0.0025, 5e-5, 3e-5


def market(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    close = np.exp(np.cumsum(rng.normal(0, 0.01, (PERIODS + 1, COINS)), axis=0))
    high = close * (1 + rng.uniform(0, 0.01, close.shape))
    low = close * (1 - rng.uniform(0, 0.01, close.shape))
    idx = pd.date_range("2017-01-01", periods=PERIODS + 1, freq="30min")
    cols = [f"c{i}" for i in range(COINS)]
    return tuple(pd.DataFrame(a, index=idx, columns=cols) for a in (close, high, low))  # type: ignore[return-value]


def timed(run: Callable[[], None], steps: int) -> tuple[float, float]:
    """``run()`` (``steps`` steps) as (samples per CPU second of this process, samples per wall second)."""
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return steps * BATCH / (time.process_time() - cpu), steps * BATCH / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--device", default="cpu", help="cpu only: the port keeps its memory in NumPy")
    args = parser.parse_args()
    if device_arg(args.device).type != "cpu":
        print(f"bench_eiie: a one-thread CPU benchmark (the port's PVM is a NumPy array); --device {args.device} skipped.")
        return
    torch.set_num_threads(1)
    keep_freed_memory()
    dtype = getattr(torch, args.dtype)
    load_before = os.getloadavg()
    close, high, low = market()
    prices = price_windows(close, WINDOW, high=high, low=low)
    returns = make_windows(to_returns(close), WINDOW, horizon=1, step=1, dtype=torch.float64)

    # the port: x (T, F, N, W) float, y (T, N) price relatives of the period after each window
    x = prices.X.permute(0, 1, 3, 2).to(dtype).numpy().copy()
    y = (1.0 + prices.y[:, 0, 0]).to(dtype).numpy().copy()
    torch.manual_seed(0)
    agent = PGPortfolioAgent(x, y, BATCH, COMMISSION, BETA, LR, seed=0)

    # one fit of `steps` steps (its data, PVM and sampler set up once, inside the timing)
    def fit_rate(windows, method: str, **kw: object) -> Callable[[], tuple[float, float]]:
        def measure() -> tuple[float, float]:
            torch.manual_seed(0)
            model = EIIE(COINS, WINDOW, **kw)  # type: ignore[arg-type]
            t = OSBLTrainer(model, commission=COMMISSION, steps=args.steps, batch_size=BATCH, beta=BETA, lr=LR,
                            method=method, dtype=dtype, checkpoint_every=args.steps)
            return timed(lambda: t.fit(windows), args.steps)
        return measure

    def port_steps() -> None:
        for _ in range(args.steps):
            agent.train_step()

    rows = {
        "pgportfolio port": lambda: timed(port_steps, args.steps),
        "gradfolio eiie approx": fit_rate(prices, "approx", n_channels=3, inputs="prices"),
        "gradfolio eiie iterative": fit_rate(prices, "iterative", n_channels=3, inputs="prices"),
        "gradfolio eiie close-only": fit_rate(returns, "iterative"),
    }
    best = best_of_rounds(rows, args.rounds, best=max)
    load_after = os.getloadavg()
    peer = best["pgportfolio port"][0]
    print(f"EIIE training, {COINS} assets, window {WINDOW}, batch {BATCH}, {args.steps} steps x {args.rounds} rounds, "
          f"1 thread, {args.dtype}; load average {load_before[0]:.2f} -> {load_after[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    wall_peer = best["pgportfolio port"][1]
    print(f"{'row':28s}{'samples/cpu-s':>14s}{'vs port':>9s}{'samples/s wall':>16s}{'vs port':>9s}")
    results = {}
    for name, (rate, wall) in best.items():
        print(f"{name:28s}{rate:14.0f}{rate / peer:9.2f}{wall:16.0f}{wall / wall_peer:9.2f}")
        results[name] = {"samples_per_cpu_s": rate, "ratio_vs_port": rate / peer, "samples_per_wall_s": wall,
                         "wall_ratio_vs_port": wall / wall_peer}
    out = Path(__file__).resolve().parent / "results" / "eiie.json"
    atomic_write_json(out, {
        "shapes": {"assets": COINS, "window": WINDOW, "batch": BATCH, "features": 3, "periods": PERIODS},
        "steps": args.steps, "rounds": args.rounds, "threads": 1, "dtype": args.dtype, "rows": results,
        "load_average": {"before": load_before, "after": load_after}, "cpus": os.cpu_count(),
        "torch": torch.__version__, "machine": platform.machine(), "python": platform.python_version(),
    })
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
