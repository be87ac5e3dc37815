"""Differentiable QP layers side by side: gradfolio.solvers vs qpth, cvxpylayers and DeepDow.

Problem (the allocation layer's standard case): long-only, fully invested mean-variance
``min 1/2 gamma w'Sw - mu'w + 1/2 alpha |w|^2 s.t. 1'w = 1, w >= 0`` for a batch of random
covariances (condition number ~1e3). Each solver runs forward + backward of a scalar loss of the
weights; the reported time is the median over calls (at least 3 and ``--seconds``), the best of
``--rounds`` interleaved rounds (robust to other load on a shared machine). The weight error is the largest absolute
difference to cvxpy + Clarabel at tight tolerance (float64 reference, first 8 problems).
DeepDow's ``NumericalMarkowitz`` (cvxpylayers) solves the same problem written as
``max mu'w - |sqrt(gamma/2) L w|^2 - (alpha/2) |w|^2`` with ``S = L'L``; it is timed when
``deepdow`` is importable (``make bench`` installs it). A second table times gradfolio alone at
large batches (many rebalance dates at once).

Before anything runs, glibc is told to keep freed memory (:mod:`benchutil`; ``--default-malloc``
skips it), for every contender alike.

Two more sections (:mod:`qp_peers`): ``constrained`` times max weight + two groups (and + leverage
+ turnover) at ``--constrained-sizes`` and ``--constrained-batches`` against proxsuite (forward)
and qpth (forward + backward) with each one's error vs Clarabel; ``contention`` times four cells
on 1 thread, on ``--threads`` threads, and on ``--threads`` threads while a spinning process
(started here, capped at ``--busy-seconds``, killed at the end) competes for a core, gradfolio
with its thread rule off and on. ``--only`` picks sections; sections not run keep their previous
results in the JSON, and the constrained and contention sections save after every cell.

Prints the torch thread count and the load average, tables, and writes
``benchmarks/results/solvers.json`` and ``solvers.md``. ``--device cuda`` without CUDA stops with
a message (:func:`benchutil.device_arg`).

Usage: ``python benchmarks/bench_solvers.py [--device cpu|cuda] [--dtype float64|float32]
[--threads 2] [--only longonly large constrained contention] [--sizes 10 50 100] [--batch 32]
[--large-batches 1000 4000] [--constrained-sizes 10 50 100 250] [--constrained-batches 1 32 256]
[--specs mw+2groups mw+2groups+lev+turn] [--max-cell-work W]
[--qpth-max-work W] [--busy-seconds 120] [--seconds 1] [--rounds 3] [--default-malloc]``
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import cvxpy as cp
import numpy as np
import torch

from benchutil import best_of_rounds, device_arg, keep_freed_memory
from qp_peers import SPECS
from gradfolio.io import atomic_write_json, atomic_write_text
from gradfolio.solvers import ConvexProblem, PortfolioConstraints

HERE = Path(__file__).resolve().parent
GAMMA, ALPHA = 5.0, 0.01


def problems(B: int, n: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
    """Random ``mu (B, n)`` and covariances ``(B, n, n)`` with eigenvalues log-spaced over 1e-3..1."""
    gen = torch.Generator().manual_seed(seed)
    Qm, _ = torch.linalg.qr(torch.randn(B, n, n, generator=gen, dtype=torch.float64))
    cov = (Qm * torch.logspace(0, -3, n, dtype=torch.float64)) @ Qm.mT * 0.04
    mu = 0.01 * torch.randn(B, n, generator=gen, dtype=torch.float64)
    return mu.to(device, dtype), cov.to(device, dtype)


def reference(mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """cvxpy + Clarabel at tight tolerance, one problem at a time."""
    out = []
    for m, S in zip(mu, cov):
        w = cp.Variable(m.shape[0])
        obj = 0.5 * GAMMA * cp.quad_form(w, cp.psd_wrap(S)) - m @ w + 0.5 * ALPHA * cp.sum_squares(w)
        cp.Problem(cp.Minimize(obj), [cp.sum(w) == 1, w >= 0]).solve(
            solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12
        )
        out.append(w.value)
    return np.stack(out)


def gradfolio_layer(n: int):
    prob = ConvexProblem(n, PortfolioConstraints(long_only=True))
    return lambda mu, cov: prob.solve(mu, cov=cov, gamma=GAMMA, alpha=ALPHA)


def cvxpylayers_layer(n: int):
    prob = ConvexProblem(n, PortfolioConstraints(long_only=True), backend="cvxpylayers")
    return lambda mu, cov: prob.solve(mu, cov=cov, gamma=GAMMA, alpha=ALPHA)


def qpth_layer(n: int):
    from qpth.qp import QPFunction

    def solve(mu, cov):
        eye = torch.eye(n, dtype=mu.dtype, device=mu.device)
        Q = GAMMA * cov + ALPHA * eye
        G, h = -eye, torch.zeros(n, dtype=mu.dtype, device=mu.device)
        A, b = torch.ones(1, n, dtype=mu.dtype, device=mu.device), torch.ones(1, dtype=mu.dtype, device=mu.device)
        return QPFunction(verbose=-1)(Q, -mu, G, h, A, b)

    return solve


def deepdow_layer(n: int):
    from deepdow.layers import NumericalMarkowitz

    layer = NumericalMarkowitz(n)

    def solve(mu, cov):
        B = mu.shape[0]
        sqrt = torch.linalg.cholesky(cov).mT  # S = L'L with L = chol(S)'
        gamma_sqrt = torch.full((B, 1), (GAMMA / 2) ** 0.5, dtype=mu.dtype, device=mu.device)
        return layer(mu, sqrt, gamma_sqrt, torch.full((B,), ALPHA / 2, dtype=mu.dtype, device=mu.device))

    return solve


def contenders():
    """``(name, layer factory)``; DeepDow only where it is installed."""
    rows = [("gradfolio", gradfolio_layer), ("qpth", qpth_layer), ("cvxpylayers", cvxpylayers_layer)]
    try:
        import deepdow  # noqa: F401
    except ImportError:
        print("deepdow is not installed (make bench installs it): skipping NumericalMarkowitz")
    else:
        rows.append(("deepdow NumericalMarkowitz", deepdow_layer))
    return rows


def time_fwd_bwd(layer, mu, cov, seconds: float) -> tuple[float, torch.Tensor]:
    """Median seconds of forward + backward over at least 3 calls and ``seconds``, and the weights."""
    times, w = [], None
    start = time.perf_counter()
    while len(times) < 4 or time.perf_counter() - start < seconds:  # the first call warms up
        m, S = mu.clone().requires_grad_(), cov.clone().requires_grad_()
        if mu.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        w = layer(m, S)
        (w * torch.linspace(-1, 1, w.shape[-1], dtype=w.dtype, device=w.device)).sum().backward()
        if mu.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), w.detach()


def timer(layer, mu, cov, seconds: float):
    """A measure for :func:`benchutil.best_of_rounds`: ``time_fwd_bwd`` of ``layer`` on ``mu, cov``."""
    return lambda: time_fwd_bwd(layer, mu, cov, seconds)


def time_calls(fn, seconds: float) -> tuple[float, object]:
    """Median seconds of ``fn()`` over at least 3 calls and ``seconds`` (one call after the warm-up
    when that took longer than ``seconds``), and its last result. The warm-up is two calls, the
    second one judged: a first call pays one-time costs (loading compiled kernels, first
    allocations) that would otherwise leave a fast solver with a single timed call."""
    fn()
    t0 = time.perf_counter()
    out = fn()  # warm-up
    first = time.perf_counter() - t0
    times: list[float] = []
    start = time.perf_counter()
    while not times or (first <= seconds and (len(times) < 3 or time.perf_counter() - start < seconds)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def constrained_measures(name: str, n: int, B: int, dtype, device, threads: int, seconds: float, peers: bool):
    """Measures of one constrained cell (:mod:`qp_peers`): gradfolio forward and forward + backward,
    proxsuite forward, qpth forward + backward (peers on CPU only, and qpth skipped when
    ``peers`` is false)."""
    import qp_peers

    mu, cov = problems(B, n, dtype, device, seed=2)
    prob = ConvexProblem(n, qp_peers.spec(name, n))
    wp = qp_peers.w_prev(B, n, mu) if prob.compiled.uses_prev else None
    form = qp_peers.standard_form(prob, mu.double(), cov.double())
    weights = torch.linspace(-1, 1, n, dtype=dtype, device=device)

    def ours_fwd():
        with torch.no_grad():
            return prob.solve(mu, cov=cov, gamma=qp_peers.GAMMA, alpha=qp_peers.ALPHA, w_prev=wp)

    def ours_fwd_bwd():
        m, S = mu.clone().requires_grad_(), cov.clone().requires_grad_()
        w = prob.solve(m, cov=S, gamma=qp_peers.GAMMA, alpha=qp_peers.ALPHA, w_prev=wp)
        (w * weights).sum().backward()
        return w.detach()

    def sync(fn):
        def run():
            out = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return out
        return run

    measures = {("gradfolio", "fwd"): lambda: time_calls(sync(ours_fwd), seconds),
                ("gradfolio", "fwd+bwd"): lambda: time_calls(sync(ours_fwd_bwd), seconds)}
    if device.type == "cpu":
        prox = qp_peers.Proxsuite(form, threads)
        measures[("proxsuite", "fwd")] = lambda: time_calls(lambda: prox(form["Q"], form["q"])[:, :n], seconds)
        if peers:
            qpth = qp_peers.qpth_layer(form, n)

            def qpth_fwd_bwd():
                Q, q = form["Q"].clone().requires_grad_(), form["q"].clone().requires_grad_()
                x = qpth(Q, q)[:, :n]
                (x * weights.double()).sum().backward()
                return x.detach()

            measures[("qpth", "fwd+bwd")] = lambda: time_calls(qpth_fwd_bwd, seconds)
    return measures, form


def constrained_rows(args, dtype, device, save=lambda rows: None) -> list[dict]:
    """The constrained table: every spec, size and batch of ``args``; ratios against the peers measured in the same round."""
    import qp_peers

    rows = []
    for name in args.specs:
        for n in args.constrained_sizes:
            for B in args.constrained_batches:
                if B * (n * (1 if name == "mw+2groups" else 3)) ** 2 > args.max_cell_work:
                    continue
                peers = B * (3 * n) ** 3 <= args.qpth_max_work
                measures, form = constrained_measures(name, n, B, dtype, device, args.threads, args.seconds, peers)
                ref = qp_peers.clarabel(form, n, min(B, 4))
                flat = {f"{s} {m}": fn for (s, m), fn in measures.items()}
                best = best_of_rounds(flat, args.rounds, context=f" {name} n={n} B={B}")
                cell = []
                for key, (sec, w) in best.items():
                    solver, mode = key.split(" ")
                    err = float("nan") if w is None else float(np.abs(w[: ref.shape[0]].double().cpu().numpy() - ref).max())
                    cell.append({"spec": name, "n": n, "batch": B, "solver": solver, "mode": mode, "ms": sec * 1e3,
                                 "max_weight_error": err, "threads": args.threads,
                                 "load_average": round(os.getloadavg()[0], 2)})
                for r in cell:
                    ours = next(c["ms"] for c in cell if c["solver"] == "gradfolio" and c["mode"] == r["mode"])
                    r["time_vs_gradfolio"] = r["ms"] / ours
                rows += cell
                print("  ".join(f"{r['solver']} {r['mode']} {r['ms']:.2f} ms ({r['time_vs_gradfolio']:.1f}x, err {r['max_weight_error']:.0e})"
                                for r in cell), f"<- {name} n={n} B={B}", flush=True)
                save(rows)  # a run cut short keeps the cells it finished
    return rows


def cell_key(row: dict) -> tuple:
    """``(spec, n, batch, threads)`` of a constrained row (rows before threads were recorded: 2)."""
    return row["spec"], row["n"], row["batch"], row.get("threads", 2)


def constrained_table(rows: list[dict]) -> list[str]:
    """Markdown lines: one row per spec, size and batch, ratios as peer time over gradfolio's (same mode, same run)."""
    lines = ["| constraints | n | batch | threads | gradfolio fwd (ms) | proxsuite fwd (ms) | x | gradfolio fwd+bwd (ms) | qpth fwd+bwd (ms) | x "
             "| weight error gradfolio / proxsuite / qpth | load |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({cell_key(r) for r in rows})
    for spec, n, B, threads in keys:
        get = {(r["solver"], r["mode"]): r for r in rows if cell_key(r) == (spec, n, B, threads)}
        nan = {"ms": float("nan"), "time_vs_gradfolio": float("nan"), "max_weight_error": float("nan")}
        gf, gb = get[("gradfolio", "fwd")], get[("gradfolio", "fwd+bwd")]
        px, qp = get.get(("proxsuite", "fwd"), nan), get.get(("qpth", "fwd+bwd"), nan)
        lines.append(f"| {spec} | {n} | {B} | {threads} | {gf['ms']:.2f} | {px['ms']:.2f} | {px['time_vs_gradfolio']:.1f} | {gb['ms']:.2f} "
                     f"| {qp['ms']:.1f} | {qp['time_vs_gradfolio']:.1f} | {gb['max_weight_error']:.0e} / {px['max_weight_error']:.0e} "
                     f"/ {qp['max_weight_error']:.0e} | {gf.get('load_average', '?')} |")
    return lines


def longonly_rows(args, dtype, device) -> list[dict]:
    """The long-only table (forward + backward, batch ``args.batch``), every contender in one run."""
    rows = []
    for n in args.sizes:
        mu, cov = problems(args.batch, n, dtype, device)
        ref = reference(mu[:8].double().cpu().numpy(), cov[:8].double().cpu().numpy())
        measures = {name: timer(make(n), mu, cov, args.seconds) for name, make in contenders()}
        for name, (sec, w) in best_of_rounds(measures, args.rounds, context=f" n={n}").items():
            err = float("nan") if w is None else float(np.abs(w[:8].double().cpu().numpy() - ref).max())
            rows.append({"solver": name, "n": n, "batch": args.batch, "ms": sec * 1e3, "max_weight_error": err})
    for n in args.sizes:
        ours = next(r["ms"] for r in rows if r["n"] == n and r["solver"] == "gradfolio")
        for r in rows:
            if r["n"] == n:
                r["time_vs_gradfolio"] = r["ms"] / ours
    return rows


def large_rows(args, dtype, device) -> list[dict]:
    """gradfolio alone at large batches (n = 50, long-only)."""
    large = []
    for B in args.large_batches:
        n = 50
        mu, cov = problems(B, n, dtype, device, seed=1)
        sec, _ = best_of_rounds({"gradfolio": timer(gradfolio_layer(n), mu, cov, args.seconds)}, args.rounds)["gradfolio"]
        large.append({"solver": "gradfolio", "n": n, "batch": B, "ms": sec * 1e3, "ms_per_problem": sec * 1e3 / B})
    return large


CONTENTION_CELLS = (("long-only", 50, 32), ("mw+2groups", 50, 32), ("mw+2groups", 50, 1), ("mw+2groups+lev+turn", 10, 32))


@contextlib.contextmanager
def busy_process(on: bool, cap_seconds: float):
    """A competing process that keeps one core busy (a Python spin loop that ends by itself after
    ``cap_seconds``), killed when the block ends; nothing when ``on`` is false."""
    if not on:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", f"import time\nt = time.time()\nwhile time.time() - t < {cap_seconds}: pass"])
    try:
        time.sleep(0.2)
        yield
    finally:
        proc.kill()
        proc.wait()


def contention_measures(cell: tuple[str, int, int], dtype, device, threads: int, seconds: float,
                        qpth_max_work: float = float("inf")) -> dict:
    """Forward + backward of gradfolio with its thread rule off (torch's count) and on
    (``QPSettings(threads="auto")``), qpth forward + backward (where ``batch * (3 n)^3`` is at most
    ``qpth_max_work``) and proxsuite forward, on one cell."""
    import qp_peers

    name, n, B = cell
    spec = PortfolioConstraints(long_only=True) if name == "long-only" else qp_peers.spec(name, n)
    mu, cov = problems(B, n, dtype, device, seed=3)
    auto = ConvexProblem(n, spec)
    # The same algorithm with the rule off (on the CPU a small leverage/turnover spec starts in the
    # compiled active-set method: ConvexProblem.cpu_settings).
    off = ConvexProblem(n, spec, settings=dataclasses.replace(
        auto.cpu_settings if device.type == "cpu" else auto.settings, threads=None))
    wp = qp_peers.w_prev(B, n, mu) if auto.compiled.uses_prev else None
    form = qp_peers.standard_form(auto, mu.double(), cov.double())
    weights = torch.linspace(-1, 1, n, dtype=dtype, device=device)

    # Fresh leaves without a copy (detach): a (B, n, n) clone per call is a parallel op of the
    # harness, outside the layer and its thread rule, and alone cost a scheduler time slice per
    # call with a busy process (long-only n = 50: 2.5x with clones).
    def fwd_bwd(prob):
        def run():
            m, S = mu.detach().requires_grad_(), cov.detach().requires_grad_()
            w = prob.solve(m, cov=S, gamma=qp_peers.GAMMA, alpha=qp_peers.ALPHA, w_prev=wp)
            (w * weights).sum().backward()
            return w.detach()
        return lambda: time_calls(run, seconds)

    qpth = qp_peers.qpth_layer(form, n)

    def qpth_run():
        Q, q = form["Q"].detach().requires_grad_(), form["q"].detach().requires_grad_()
        x = qpth(Q, q)[:, :n]
        (x * weights.double()).sum().backward()
        return x.detach()

    prox = qp_peers.Proxsuite(form, threads)
    out = {"gradfolio fwd+bwd (rule off)": fwd_bwd(off), "gradfolio fwd+bwd (rule on)": fwd_bwd(auto),
           "qpth fwd+bwd": lambda: time_calls(qpth_run, seconds),
           "proxsuite fwd": lambda: time_calls(lambda: prox(form["Q"], form["q"]), seconds)}
    if B * (3 * n) ** 3 > qpth_max_work:
        del out["qpth fwd+bwd"]
    return out


def contention_rows(args, dtype, device, save=lambda rows: None) -> list[dict]:
    """Every contender of :func:`contention_measures` on 1 thread, on ``args.threads`` threads, and on
    ``args.threads`` threads with a busy competing process; the slowdown is over the 1-thread time."""
    rows = []
    conditions = ((1, False), (args.threads, False), (args.threads, True))
    for cell in CONTENTION_CELLS:
        base: dict[str, float] = {}
        for count, busy in conditions:
            torch.set_num_threads(count)
            measures = contention_measures(cell, dtype, device, count, args.seconds, args.qpth_max_work)
            with busy_process(busy, args.busy_seconds):
                best = best_of_rounds(measures, args.rounds, context=f" {cell} threads={count} busy={busy}")
            for solver, (sec, _) in best.items():
                base.setdefault(solver, sec)
                rows.append({"constraints": cell[0], "n": cell[1], "batch": cell[2], "solver": solver, "threads": count,
                             "busy_process": busy, "ms": sec * 1e3, "vs_1_thread": sec / base[solver],
                             "load_average": round(os.getloadavg()[0], 2)})
            print(f"{cell} threads={count} busy={busy}: " + ", ".join(f"{k} {v[0] * 1e3:.2f} ms" for k, v in best.items()), flush=True)
            save(rows)
    torch.set_num_threads(args.threads)
    return rows


def contention_table(rows: list[dict]) -> list[str]:
    """Markdown: per cell and solver, ms on 1 thread, on N threads, on N threads with a busy process (x over 1 thread)."""
    lines = ["| constraints | n | batch | solver | 1 thread (ms) | N threads (ms) | N threads + busy process (ms) |",
             "|---|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["constraints"], r["n"], r["batch"], r["solver"]) for r in rows))
    for key in keys:
        got = [r for r in rows if (r["constraints"], r["n"], r["batch"], r["solver"]) == key]
        cells = [f"{r['ms']:.2f}" + ("" if r["threads"] == 1 else f" ({r['vs_1_thread']:.1f}x, N = {r['threads']})") for r in got]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | " + " | ".join(cells) + " |")
    return lines


SECTIONS = ("longonly", "large", "constrained", "contention")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--large-batches", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--constrained-sizes", type=int, nargs="+", default=[10, 50, 100, 250])
    parser.add_argument("--constrained-batches", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--specs", nargs="+", default=list(SPECS), choices=SPECS,
                        help="constraint sets of the constrained section")
    parser.add_argument("--max-cell-work", type=float, default=float("inf"),
                        help="skip constrained cells where batch * (variables)^2 exceeds this")
    parser.add_argument("--qpth-max-work", type=float, default=32 * 300**3,
                        help="skip qpth where batch * (3 n)^3 exceeds this (its interior point is slow there)")
    parser.add_argument("--busy-seconds", type=float, default=120.0, help="lifetime cap of the competing busy process")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per solver, size and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best round counts")
    parser.add_argument("--out", default=str(HERE / "results" / "solvers"))
    parser.add_argument("--default-malloc", action="store_true", help="leave glibc's malloc settings alone")
    args = parser.parse_args()
    device, dtype = device_arg(args.device), getattr(torch, args.dtype)
    kept = False if args.default_malloc else keep_freed_memory()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    load = os.getloadavg()
    print(f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    out = Path(args.out)
    suffix = "" if (device.type == "cpu" and args.dtype == "float64") else f"_{device.type}_{args.dtype}"
    json_path = out.with_name(out.name + suffix + ".json")
    result = json.loads(json_path.read_text()) if json_path.exists() else {}
    meta = {"device": str(device), "dtype": args.dtype, "threads": args.threads, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "malloc_keeps_freed_memory": kept,
            "cpus": os.cpu_count(), "load_average_at_start": [round(v, 2) for v in load]}
    # Sections not run keep their previous results (each section records its own meta).
    if "longonly" in args.only:
        result["rows"], result["meta"] = longonly_rows(args, dtype, device), meta
    if "large" in args.only:
        result["large_batches"], result["large_meta"] = large_rows(args, dtype, device), meta
    md_path = out.with_name(out.name + suffix + ".md")

    def persist(key: str):
        def save(rows: list[dict]) -> None:
            result[key], result[key + "_meta"] = rows, meta
            atomic_write_json(json_path, result)
            atomic_write_text(md_path, report(result))
        return save

    if "constrained" in args.only:
        # Cells not measured in this run keep their earlier rows (each row records its threads and load).
        earlier = result.get("constrained", [])

        def merged(rows: list[dict]) -> list[dict]:
            fresh = {cell_key(r) for r in rows}
            return [r for r in earlier if cell_key(r) not in fresh] + rows

        save = persist("constrained")
        save(merged(constrained_rows(args, dtype, device, lambda rows: save(merged(rows)))))
    if "contention" in args.only:
        persist("contention")(contention_rows(args, dtype, device, persist("contention")))
    text = report(result)
    print(text)
    atomic_write_json(json_path, result)
    atomic_write_text(md_path, text)


def report(result: dict) -> str:
    """The markdown report of every section in ``result``."""
    def head(meta: dict) -> str:
        return (f"{meta['device']}, {meta['dtype']}, {meta['threads']} threads, glibc keeps freed memory: "
                f"{meta['malloc_keeps_freed_memory']}, load average at start {meta.get('load_average_at_start', '?')} "
                f"on {meta.get('cpus', '?')} CPUs")

    lines: list[str] = []
    if "rows" in result:
        lines += [f"# Differentiable QP layers, forward + backward ({head(result['meta'])})", "",
                  "| n | batch | solver | ms | x gradfolio time | max weight error vs Clarabel |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['n']} | {r['batch']} | {r['solver']} | {r['ms']:.2f} | {r['time_vs_gradfolio']:.1f} "
                  f"| {r['max_weight_error']:.1e} |" for r in result["rows"]]
    if "large_batches" in result:
        lines += ["", "## Many problems at once (n = 50)", "", "| batch | ms | ms per problem |", "|---|---|---|"]
        lines += [f"| {r['batch']} | {r['ms']:.1f} | {r['ms_per_problem']:.3f} |" for r in result["large_batches"]]
    if "constrained" in result:
        meta = result.get("constrained_meta", result.get("meta"))
        lines += ["", f"## Constrained portfolios ({head(meta)})", "",
                  "x: the peer's time over gradfolio's (same mode, same run); errors: max |w - w_Clarabel| on the first 4 problems.", ""]
        lines += constrained_table(result["constrained"])
    if "contention" in result:
        lines += ["", f"## Threads and a competing busy process ({head(result['contention_meta'])})", ""]
        lines += contention_table(result["contention"])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
