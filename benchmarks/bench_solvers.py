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

Prints tables and writes ``benchmarks/results/solvers.json`` and ``solvers.md``.

Usage: ``python benchmarks/bench_solvers.py [--device cpu|cuda] [--dtype float64|float32]
[--threads 2] [--sizes 10 50 100] [--batch 32] [--large-batches 1000 4000] [--seconds 1] [--rounds 3]
[--default-malloc]``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from pathlib import Path

import cvxpy as cp
import numpy as np
import torch

from benchutil import best_of_rounds, device_arg, keep_freed_memory
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--large-batches", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per solver, size and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best round counts")
    parser.add_argument("--out", default=str(HERE / "results" / "solvers"))
    parser.add_argument("--default-malloc", action="store_true", help="leave glibc's malloc settings alone")
    args = parser.parse_args()
    kept = False if args.default_malloc else keep_freed_memory()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    device, dtype = device_arg(args.device), getattr(torch, args.dtype)

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

    large = []
    for B in args.large_batches:
        n = 50
        mu, cov = problems(B, n, dtype, device, seed=1)
        sec, _ = best_of_rounds({"gradfolio": timer(gradfolio_layer(n), mu, cov, args.seconds)}, args.rounds)["gradfolio"]
        large.append({"solver": "gradfolio", "n": n, "batch": B, "ms": sec * 1e3, "ms_per_problem": sec * 1e3 / B})

    meta = {"device": str(device), "dtype": args.dtype, "threads": args.threads, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "malloc_keeps_freed_memory": kept}
    lines = [f"# Differentiable QP layers, forward + backward ({meta['device']}, {args.dtype}, {args.threads} threads, "
             f"glibc keeps freed memory: {kept})", "",
             "| n | batch | solver | ms | x gradfolio time | max weight error vs Clarabel |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['batch']} | {r['solver']} | {r['ms']:.2f} | {r['time_vs_gradfolio']:.1f} | {r['max_weight_error']:.1e} |" for r in rows]
    lines += ["", "## Many problems at once (n = 50)", "", "| batch | ms | ms per problem |", "|---|---|---|"]
    lines += [f"| {r['batch']} | {r['ms']:.1f} | {r['ms_per_problem']:.3f} |" for r in large]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    suffix = "" if (device.type == "cpu" and args.dtype == "float64") else f"_{device.type}_{args.dtype}"
    atomic_write_json(out.with_name(out.name + suffix + ".json"), {"meta": meta, "rows": rows, "large_batches": large})
    atomic_write_text(out.with_name(out.name + suffix + ".md"), text)


if __name__ == "__main__":
    main()
