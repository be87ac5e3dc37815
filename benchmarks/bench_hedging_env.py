"""Hedging market speed: torch SABR simulation and HedgingEnv vs plain NumPy references.

Measured side by side in one run (best of ``--repeats``), per number of paths:

- ``sabr``: path x step/s of SABR simulation (eqs. 50-52), torch vs NumPy (both vectorized
  over paths, a loop over time);
- ``env``: full episodes (reset: SABR paths, Hagan vols, client orders; then 30 delta-gamma hedging
  steps) — path x step/s and batched ``env.step`` calls/s — for the torch environment, the same
  algorithm in NumPy vectorized over paths, and the per-path design of Cao et al.'s code
  (one episode at a time, a list of options; run on ``--loop-paths`` paths).

Before timing, the NumPy references are checked to reproduce the torch environment's P&L on the
same market (float64). Prints a table and writes ``benchmarks/results/hedging_env.json``.

Usage: ``python benchmarks/bench_hedging_env.py [--device cpu|cuda] [--dtype float32|float64] [--threads N]``
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from hedging_numpy_reference import (  # noqa: E402
    episode_per_path,
    episode_vectorized,
    hagan_np,
    orders_np,
    simulate_sabr_np,
)

from gradfolio.hedging import EnvConfig, HedgingEnv, simulate_sabr  # noqa: E402
from gradfolio.hedging.strategies import GreekHedge  # noqa: E402


def best_time(fn, repeats: int, sync) -> float:
    fn()  # warm-up (allocations, kernels)
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def check_references(cfg: EnvConfig, n_paths: int = 64) -> dict[str, float]:
    """Max |P&L difference| of the NumPy references vs the torch env on the same market (float64)."""
    env = HedgingEnv(cfg, n_paths, seed=0, dtype=torch.float64)
    episode = env.run_episode(GreekHedge(env, "delta_gamma"), seed=7)
    spot, vol, net = env.spot.numpy(), env.day_vol.numpy(), env.orders.net.numpy()
    torch_pnl = episode.pnl.numpy()
    return {
        "numpy_vectorized": float(np.abs(episode_vectorized(spot, vol, net) - torch_pnl).max()),
        "numpy_per_path": float(np.abs(episode_per_path(spot, vol, net) - torch_pnl).max()),
    }


def numpy_market(cfg: EnvConfig, n_paths: int, rng: np.random.Generator):
    m = cfg.market
    spot, alpha = simulate_sabr_np(n_paths, cfg.n_days, m.s0, m.alpha0, m.beta, m.rho, m.nu, m.mu, m.dt, rng)
    days_left = np.arange(cfg.n_days, -1, -1) / m.days_per_year
    day_vol = hagan_np(spot, m.s0, days_left, alpha, m.beta, m.rho, m.nu)
    return spot, day_vol, orders_np(n_paths, cfg.n_days, cfg.arrival_rate, rng)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--paths", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--loop-paths", type=int, default=100, help="paths for the per-path NumPy reference")
    parser.add_argument("--numpy-max-paths", type=int, default=100_000, help="skip the vectorized NumPy peers above this")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (NumPy is single-threaded); default: torch's")
    parser.add_argument("--out", default=str(HERE / "results" / "hedging_env.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cfg = EnvConfig()
    m, T = cfg.market, cfg.n_days

    errors = check_references(cfg)
    print(f"NumPy references vs torch env, max |daily P&L difference| (float64): {errors}")
    if max(errors.values()) > 1e-8:
        print("references disagree with the torch environment", file=sys.stderr)
        return 1

    rng = np.random.default_rng(0)
    loop_market = numpy_market(cfg, args.loop_paths, rng)
    t_loop = best_time(lambda: episode_per_path(*loop_market), 1, lambda: None)
    loop_rate = args.loop_paths * T / t_loop

    rows = []
    for n in args.paths:
        env = HedgingEnv(cfg, n, seed=0, device=device, dtype=dtype)
        policy = GreekHedge(env, "delta_gamma")
        t_sabr_torch = best_time(lambda: simulate_sabr(n, T, sigma0=m.alpha0, beta=m.beta, rho=m.rho, nu=m.nu, generator=1, device=device, dtype=dtype), args.repeats, sync)
        t_env = best_time(lambda: env.run_episode(policy, seed=2), args.repeats, sync)
        nan = float("nan")
        if n <= args.numpy_max_paths:
            t_sabr_np = best_time(lambda: simulate_sabr_np(n, T, m.s0, m.alpha0, m.beta, m.rho, m.nu, m.mu, m.dt, rng), args.repeats, lambda: None)
            t_env_np = best_time(lambda: episode_vectorized(*numpy_market(cfg, n, rng)), args.repeats, lambda: None)
        else:
            t_sabr_np = t_env_np = nan
        rows.append({
            "paths": n,
            "sabr_torch_path_steps_per_s": n * T / t_sabr_torch,
            "sabr_numpy_path_steps_per_s": n * T / t_sabr_np,
            "sabr_speedup": t_sabr_np / t_sabr_torch,
            "env_torch_path_steps_per_s": n * T / t_env,
            "env_torch_steps_per_s": T / t_env,
            "env_numpy_vectorized_path_steps_per_s": n * T / t_env_np,
            "env_numpy_vectorized_steps_per_s": T / t_env_np,
            "env_speedup_vs_numpy_vectorized": t_env_np / t_env,
            "env_speedup_vs_numpy_per_path": (n * T / t_env) / loop_rate,
        })

    header = f"{'paths':>8} | {'SABR torch':>11} {'SABR numpy':>11} {'x':>6} | {'env torch':>11} {'steps/s':>8} {'env np-vec':>11} {'x':>6} | {'x per-path':>10}"
    print(f"\nhedging env on {device} ({args.dtype}); path x step/s; per-path NumPy reference: {loop_rate:,.0f} path x step/s on {args.loop_paths} paths")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['paths']:>8} | {r['sabr_torch_path_steps_per_s']:>11.3g} {r['sabr_numpy_path_steps_per_s']:>11.3g} {r['sabr_speedup']:>6.1f} | "
            f"{r['env_torch_path_steps_per_s']:>11.3g} {r['env_torch_steps_per_s']:>8.1f} {r['env_numpy_vectorized_path_steps_per_s']:>11.3g} "
            f"{r['env_speedup_vs_numpy_vectorized']:>6.1f} | {r['env_speedup_vs_numpy_per_path']:>10.0f}"
        )
    result = {
        "benchmark": "hedging_env",
        "device": str(device),
        "dtype": args.dtype,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "n_days": T,
        "reference_max_abs_pnl_diff": errors,
        "numpy_per_path_path_steps_per_s": loop_rate,
        "numpy_per_path_paths": args.loop_paths,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2).replace("NaN", "null") + "\n")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
