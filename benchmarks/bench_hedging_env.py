"""Hedging market speed: torch SABR simulation and HedgingEnv vs plain NumPy references.

Measured side by side in one run (best of ``--repeats``), per number of paths:

- ``sabr``: path x step/s of SABR simulation (eqs. 50-52), torch vs NumPy (both vectorized
  over paths, a loop over time);
- ``env``: full episodes (reset: SABR paths, Hagan vols, client orders; then 30 delta-gamma hedging
  steps) — path x step/s and batched ``env.step`` calls/s — for the torch environment, the same
  algorithm in NumPy vectorized over paths, and the per-path design of Cao et al.'s code
  (one episode at a time, a list of options; run on ``--loop-paths`` paths).

NumPy computes in float64, so every speed-up compares torch in float64 (same dtype); the torch
float32 throughput is reported alongside, without a ratio. Each torch env is timed with the
default per-slot valuation, the fused overnight revaluation (``HedgingEnv(fused=True)``) and the
compiled one (``HedgingEnv(compiled=True)``, CPU only), the three interleaved round by round (best of ``--repeats`` rounds each), for every thread count of
``--threads`` (e.g. ``--threads 1 2``); NumPy, single-threaded, is timed once per number of paths
and every ratio of the run is against that measurement. The issue's ">= 20x faster than a plain
NumPy implementation" is checked against the per-path loop and recorded under ``goal``. That the NumPy references compute the
torch environment's P&L is checked by ``tests/hedging/test_env.py``
(``test_numpy_references_of_the_benchmark_reproduce_the_env``). Prints a table and writes
``benchmarks/results/hedging_env.json`` (``--out`` elsewhere). The JSON keeps the keys of earlier runs
(``threads``, ``rows`` with ``torch_float64`` / ``torch_float32`` the per-slot env at the first thread
count) and adds ``torch_float64_fused`` / ``torch_float32_fused``, ``torch_float64_compiled`` /
``torch_float32_compiled`` (absent on CUDA), their ratios and ``runs``:
one ``{"threads": t, "rows": [...]}`` per thread count.

Usage: ``python benchmarks/bench_hedging_env.py [--device cpu|cuda] [--paths N ...] [--repeats R] [--threads N ...] [--out PATH]``
"""

from __future__ import annotations

import argparse
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

from benchutil import best_of_rounds, device_arg  # noqa: E402
from gradfolio.hedging import EnvConfig, HedgingEnv, simulate_sabr  # noqa: E402
from gradfolio.hedging.baselines import GreekHedge  # noqa: E402
from gradfolio.io import atomic_write_json  # noqa: E402


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


def numpy_market(cfg: EnvConfig, n_paths: int, rng: np.random.Generator):
    m = cfg.market
    spot, alpha = simulate_sabr_np(n_paths, cfg.n_days, m.s0, m.alpha0, m.beta, m.rho, m.nu, m.mu, m.dt, rng)
    days_left = np.arange(cfg.n_days, -1, -1) / m.days_per_year
    day_vol = hagan_np(spot, m.s0, days_left, alpha, m.beta, m.rho, m.nu)
    return spot, day_vol, orders_np(n_paths, cfg.n_days, cfg.arrival_rate, rng)


GOAL = 20.0  # the issue: the env must be >= 20x faster than a plain NumPy implementation


def time_torch(cfg: EnvConfig, n: int, dtype: torch.dtype, device: torch.device, repeats: int, sync) -> dict[str, dict[str, float]]:
    """SABR simulation and full delta-gamma episodes of the torch env, per-slot (``"slots"``), fused
    (``"fused"``) and, on the CPU, compiled (``"compiled"``) valuation interleaved round by round, in
    path x step/s (and steps/s)."""
    m, T = cfg.market, cfg.n_days
    sim = lambda: simulate_sabr(n, T, alpha0=m.alpha0, s0=m.s0, beta=m.beta, rho=m.rho, nu=m.nu, generator=1, device=device, dtype=dtype)  # noqa: E731
    t_sabr = best_time(sim, repeats, sync)
    measures = {}
    variants = [("slots", {}), ("fused", {"fused": True})] + ([("compiled", {"compiled": True})] if device.type == "cpu" else [])
    for name, options in variants:
        env = HedgingEnv(cfg, n, seed=0, device=device, dtype=dtype, **options)
        policy = GreekHedge(env, "delta_gamma")
        episode = lambda env=env, policy=policy: env.run_episode(policy, seed=2)  # noqa: E731
        episode()  # warm-up (allocations, kernels)
        measures[name] = lambda episode=episode: (best_time(episode, 1, sync), None)
    times = best_of_rounds(measures, repeats)
    return {
        name: {"sabr_path_steps_per_s": n * T / t_sabr, "env_path_steps_per_s": n * T / t, "env_steps_per_s": T / t}
        for name, (t, _) in times.items()
    }


def time_numpy(cfg: EnvConfig, n: int, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    """The same for the NumPy references vectorized over paths (float64)."""
    m, T = cfg.market, cfg.n_days
    t_sabr = best_time(lambda: simulate_sabr_np(n, T, m.s0, m.alpha0, m.beta, m.rho, m.nu, m.mu, m.dt, rng), repeats, lambda: None)
    t_env = best_time(lambda: episode_vectorized(*numpy_market(cfg, n, rng)), repeats, lambda: None)
    return {"sabr_path_steps_per_s": n * T / t_sabr, "env_vectorized_path_steps_per_s": n * T / t_env, "env_vectorized_steps_per_s": T / t_env}


def torch_rows(cfg: EnvConfig, paths: list[int], numpy_rows: dict[int, dict[str, float]], loop_rate: float, device, repeats: int, sync) -> list[dict]:
    """One row per number of paths at the current torch thread count: per-slot and fused env, float64 and float32."""
    rows = []
    for n in paths:
        numpy_row = numpy_rows[n]
        f64 = time_torch(cfg, n, torch.float64, device, repeats, sync)
        f32 = time_torch(cfg, n, torch.float32, device, repeats, sync)
        vec, sabr_np = numpy_row["env_vectorized_path_steps_per_s"], numpy_row["sabr_path_steps_per_s"]
        rows.append({
            "paths": n,
            "threads": torch.get_num_threads(),
            "numpy_float64": numpy_row,
            "torch_float64": f64["slots"],
            "torch_float32": f32["slots"],
            "torch_float64_fused": f64["fused"],
            "torch_float32_fused": f32["fused"],
            # Speed-ups in the same dtype (float64) only.
            "sabr_speedup_vs_numpy": f64["slots"]["sabr_path_steps_per_s"] / sabr_np,
            "env_speedup_vs_numpy_vectorized": f64["slots"]["env_path_steps_per_s"] / vec,
            "env_speedup_vs_numpy_per_path": f64["slots"]["env_path_steps_per_s"] / loop_rate,
            "env_fused_speedup_vs_numpy_vectorized": f64["fused"]["env_path_steps_per_s"] / vec,
            "env_fused_speedup_vs_numpy_per_path": f64["fused"]["env_path_steps_per_s"] / loop_rate,
        })
        if "compiled" in f64:
            rows[-1].update({
                "torch_float64_compiled": f64["compiled"],
                "torch_float32_compiled": f32["compiled"],
                "env_compiled_speedup_vs_numpy_vectorized": f64["compiled"]["env_path_steps_per_s"] / vec,
                "env_compiled_speedup_vs_numpy_per_path": f64["compiled"]["env_path_steps_per_s"] / loop_rate,
                "env_compiled_speedup_vs_fused": f64["compiled"]["env_path_steps_per_s"] / f64["fused"]["env_path_steps_per_s"],
            })
    return rows


def print_rows(rows: list[dict]) -> None:
    header = (f"{'thr':>3} {'paths':>8} | {'SABR np':>9} {'SABR f64':>9} {'x':>5} | {'env np-vec':>10} {'env f64':>9} {'steps/s':>8} "
              f"{'x vec':>6} {'x loop':>7} | {'fused f64':>9} {'x vec':>6} {'x loop':>7} | {'comp f64':>9} {'x fused':>7} | "
              f"{'env f32':>9} {'fused f32':>9} {'comp f32':>9}")
    print(header)
    print("-" * len(header))
    for r in rows:
        np_, t64, u64 = r["numpy_float64"], r["torch_float64"], r["torch_float64_fused"]
        print(
            f"{r['threads']:>3} {r['paths']:>8} | {np_['sabr_path_steps_per_s']:>9.3g} {t64['sabr_path_steps_per_s']:>9.3g} {r['sabr_speedup_vs_numpy']:>5.1f} | "
            f"{np_['env_vectorized_path_steps_per_s']:>10.3g} {t64['env_path_steps_per_s']:>9.3g} {t64['env_steps_per_s']:>8.1f} "
            f"{r['env_speedup_vs_numpy_vectorized']:>6.1f} {r['env_speedup_vs_numpy_per_path']:>7.0f} | "
            f"{u64['env_path_steps_per_s']:>9.3g} {r['env_fused_speedup_vs_numpy_vectorized']:>6.1f} {r['env_fused_speedup_vs_numpy_per_path']:>7.0f} | "
            f"{r.get('torch_float64_compiled', {}).get('env_path_steps_per_s', float('nan')):>9.3g} {r.get('env_compiled_speedup_vs_fused', float('nan')):>7.2f} | "
            f"{r['torch_float32']['env_path_steps_per_s']:>9.3g} {r['torch_float32_fused']['env_path_steps_per_s']:>9.3g} "
            f"{r.get('torch_float32_compiled', {}).get('env_path_steps_per_s', float('nan')):>9.3g}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--paths", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--loop-paths", type=int, default=100, help="paths for the per-path NumPy reference")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="torch CPU thread counts, each timed in turn (NumPy is single-threaded); default: torch's")
    parser.add_argument("--out", default=str(HERE / "results" / "hedging_env.json"))
    args = parser.parse_args()
    device = device_arg(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cfg = EnvConfig()
    thread_counts = args.threads or [torch.get_num_threads()]

    rng = np.random.default_rng(0)
    loop_market = numpy_market(cfg, args.loop_paths, rng)
    loop_rate = args.loop_paths * cfg.n_days / best_time(lambda: episode_per_path(*loop_market), 1, lambda: None)
    numpy_rows = {n: time_numpy(cfg, n, args.repeats, rng) for n in args.paths}

    runs = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        runs.append({"threads": torch.get_num_threads(), "rows": torch_rows(cfg, args.paths, numpy_rows, loop_rate, device, args.repeats, sync)})
    rows = runs[0]["rows"]

    all_rows = [r for run in runs for r in run["rows"]]
    vs_loop = [r["env_speedup_vs_numpy_per_path"] for r in rows]
    vs_vec = [r["env_speedup_vs_numpy_vectorized"] for r in rows]
    goal = {
        "target": f">= {GOAL:g}x faster than a plain NumPy implementation (the issue)",
        "baseline": "the per-path NumPy loop (Cao et al.'s design: one episode at a time, a list of options), float64",
        "compared": "torch env in float64 (NumPy's dtype), full episodes including reset, per-slot valuation, first thread count",
        "holds": min(vs_loop) >= GOAL,
        "speedup_vs_numpy_per_path": [min(vs_loop), max(vs_loop)],
        "speedup_vs_numpy_vectorized": [min(vs_vec), max(vs_vec)],
    }
    print(f"\nhedging env on {device}, path x step/s; NumPy and the speed-ups (x) in float64; "
          f"per-path NumPy loop: {loop_rate:,.0f} path x step/s on {args.loop_paths} paths; "
          f"env = per-slot valuation, fused = HedgingEnv(fused=True), comp = HedgingEnv(compiled=True)")
    print_rows(all_rows)
    print(f"goal >= {GOAL:g}x vs the per-path NumPy loop: {'holds' if goal['holds'] else 'MISSED'} ({min(vs_loop):.0f}-{max(vs_loop):.0f}x); "
          f"vs NumPy vectorized over paths: {min(vs_vec):.1f}-{max(vs_vec):.1f}x")
    best_name = "torch_float64_compiled" if "torch_float64_compiled" in all_rows[0] else "torch_float64_fused"
    best = max(all_rows, key=lambda r: r[best_name]["env_path_steps_per_s"])
    print(f"fastest float64 env: {best_name.rsplit('_', 1)[1]}, {best[best_name]['env_path_steps_per_s']:.3g} path x step/s "
          f"({best['paths']} paths, {best['threads']} thread(s)); the issue's goal: >= 2e6 at 10 000 and 100 000 paths on 2 cores")
    result = {
        "benchmark": "hedging_env",
        "device": str(device),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "threads": runs[0]["threads"],
        "repeats": args.repeats,
        "n_days": cfg.n_days,
        "goal": goal,
        "numpy_per_path_path_steps_per_s": loop_rate,
        "numpy_per_path_paths": args.loop_paths,
        "rows": rows,
        "runs": runs,
    }
    out = atomic_write_json(args.out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
