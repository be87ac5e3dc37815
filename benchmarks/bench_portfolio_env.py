"""Portfolio environment speed: gradfolio's batched PortfolioEnv vs FinRL's StockPortfolioEnv, in one run.

Environment steps per second (one step = one path trading once and holding one day), measured
side by side, best of ``--repeats`` interleaved rounds (:func:`benchutil.best_of_rounds`):

- ``finrl``: the port of FinRL's ``StockPortfolioEnv.step`` in ``finrl_portfolio_reference.py``
  (pandas ``df.loc`` per day, state rebuilt from the covariance and indicator rows, memories
  appended); one path per environment, so 256 paths through SB3's ``DummyVecEnv`` cost 256 of
  these steps;
- ``gradfolio core``: :class:`gradfolio.allocation.rl.PortfolioEnv` with ``--envs`` paths stepped in one
  tensor operation (softmax action map, proportional costs, drift, log reward), float64;
- ``gradfolio sb3``: the same through :class:`~gradfolio.allocation.rl.adapters.PortfolioVecEnv`, the
  ``VecEnv`` SB3 trains on (NumPy actions in, float32 observations out, auto-reset).

Both observe the same amount of data per step: FinRL ``(N + 8) x N`` (covariance and 8 indicators),
gradfolio ``L * N + N`` with ``L = N + 7``. ``tests/allocation/rl/test_env.py`` checks that the FinRL
port computes gradfolio's wealth when costs are zero (FinRL ignores its ``transaction_cost_pct``).
One thread (``--threads``), glibc keeping freed memory (:func:`benchutil.keep_freed_memory`),
the machine's load average recorded. Prints a table and writes
``benchmarks/results/portfolio_env.json``.

Usage: ``python benchmarks/bench_portfolio_env.py [--device cpu|cuda] [--assets N] [--envs B] [--repeats R]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchutil import best_of_rounds, device_arg, keep_freed_memory  # noqa: E402
from finrl_portfolio_reference import make_env, make_finrl_frame  # noqa: E402

from gradfolio.allocation.rl import PortfolioEnv  # noqa: E402
from gradfolio.allocation.rl.adapters import PortfolioVecEnv  # noqa: E402
from gradfolio.io import atomic_write_json  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--assets", type=int, default=30, help="N (FinRL's tutorials use the 30 Dow stocks)")
    parser.add_argument("--envs", type=int, default=256, help="paths stepped at once by gradfolio")
    parser.add_argument("--days", type=int, default=400, help="days of data")
    parser.add_argument("--steps", type=int, default=200, help="steps timed per round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "portfolio_env.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    heap = keep_freed_memory()  # for every contender alike (see benchutil)
    device = device_arg(args.device)
    N, B, steps = args.assets, args.envs, args.steps
    L = N + 7  # the same observation size as FinRL's (N + 8) x N state
    rng = np.random.default_rng(0)
    close = pd.DataFrame(100 * np.cumprod(1 + rng.normal(0.0004, 0.012, (args.days, N)), axis=0),
                         index=pd.bdate_range("2015-01-01", periods=args.days), columns=[f"T{i:02d}" for i in range(N)])
    returns = close.pct_change().iloc[1:]
    df = make_finrl_frame(close, lookback=60)
    finrl = make_env(df, N)
    actions = rng.normal(size=(steps, N))

    def time_finrl() -> tuple[float, None]:
        finrl.reset()
        start = time.perf_counter()
        for a in actions:
            finrl.step(a)
        return steps / (time.perf_counter() - start), None

    core = PortfolioEnv(returns, L, n_envs=B, episode_length=steps, cost=0.001, seed=0, device=device)
    vec = PortfolioVecEnv(PortfolioEnv(returns, L, n_envs=B, episode_length=steps, cost=0.001, seed=0, device=device))
    scores = torch.as_tensor(rng.normal(size=(steps, B, N)), device=device)
    np_actions = np.clip(rng.normal(size=(steps, B, N)), -1, 1).astype(np.float32)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def time_core() -> tuple[float, None]:
        core.reset()
        sync()
        start = time.perf_counter()
        for p in range(steps):
            core.step(scores[p])
        sync()
        return B * steps / (time.perf_counter() - start), None

    def time_vec() -> tuple[float, None]:
        vec.reset()
        start = time.perf_counter()
        for p in range(steps):
            vec.step(np_actions[p])
        return B * steps / (time.perf_counter() - start), None

    time_finrl(), time_core(), time_vec()  # warm-up
    best = best_of_rounds({"finrl": time_finrl, "core": time_core, "sb3": time_vec}, args.repeats, best=max)
    rate = {k: v[0] for k, v in best.items()}
    rows = [
        ("FinRL StockPortfolioEnv (port, 1 path)", rate["finrl"], 1.0),
        (f"gradfolio PortfolioEnv core ({B} paths)", rate["core"], rate["core"] / rate["finrl"]),
        (f"gradfolio PortfolioVecEnv for SB3 ({B} paths)", rate["sb3"], rate["sb3"] / rate["finrl"]),
    ]
    print(f"N={N} assets, observation {(N + 8) * N} numbers, {steps} steps, device={device}, threads={torch.get_num_threads()}")
    print(f"{'environment':<48} {'env steps/s':>14} {'vs FinRL':>10}")
    for name, r, ratio in rows:
        print(f"{name:<48} {r:>14,.0f} {ratio:>9.0f}x")
    load = os.getloadavg()
    result = {
        "benchmark": "portfolio_env",
        "unit": "environment steps per second (paths x steps)",
        "assets": N, "envs": B, "lookback": L, "steps": steps, "days": args.days, "repeats": args.repeats,
        "device": str(device), "keep_freed_memory": heap, "threads": torch.get_num_threads(), "load_average": list(load),
        "machine": platform.machine(), "python": platform.python_version(), "torch": torch.__version__,
        "steps_per_s": rate,
        "ratio_vs_finrl": {"core": rate["core"] / rate["finrl"], "sb3": rate["sb3"] / rate["finrl"]},
        "goal": {"target": ">= 100x FinRL (256 envs)", "met": bool(rate["sb3"] / rate["finrl"] >= 100)},
    }
    atomic_write_json(args.out, result)
    print(f"load average {load[0]:.2f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
