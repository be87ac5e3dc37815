"""Factor-form long-only QP vs the dense form and cvxpylayers: forward + backward.

Problem (every batch element)::

    min  1/2 w'(L L' + diag d) w - mu'w    s.t.  1'w = 1,  w >= 0

with ``n`` assets, ``K`` factors, a batch of ``B`` (default ``n = 500, K = 10, B = 32``).
Contenders: ``solve_factor_qp`` (Woodbury interior point, no ``n x n`` matrix), ``solve_qp`` on
the dense ``Q = L L' + diag d`` (formed), and cvxpylayers on the factor form (parameters ``L``,
``sqrt d``, ``mu``; the problem it compiles never holds ``n x n`` either). Weights are compared
with the dense solution. Writes ``results/factor_qp.json``.

    python benchmarks/bench_factor_qp.py [--n 500] [--k 10] [--batch 32] [--device cpu] [--skip-cvxpylayers]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gradfolio.solvers import solve_qp
from gradfolio.solvers.factor_qp import solve_factor_qp

HERE = Path(__file__).resolve().parent


def problem(B: int, n: int, K: int, device: torch.device, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    L = (torch.randn(B, n, K, generator=gen, dtype=torch.float64) * 0.01).to(device)
    d = (torch.rand(B, n, generator=gen, dtype=torch.float64) * 2e-4 + 5e-5).to(device)
    mu = (torch.randn(B, n, generator=gen, dtype=torch.float64) * 2e-4).to(device)
    return mu, L, d


def factor(mu, L, d):
    return solve_factor_qp(-mu, L, d)


def dense(mu, L, d):
    n = mu.shape[-1]
    eye = torch.eye(n, dtype=mu.dtype, device=mu.device)
    s = 1e-4
    Q = (L @ L.mT + torch.diag_embed(d)) / s
    return solve_qp(Q, -mu / s, G=-eye, h=torch.zeros(n, dtype=mu.dtype, device=mu.device),
                    A=torch.ones(1, n, dtype=mu.dtype, device=mu.device), b=torch.ones(1, dtype=mu.dtype, device=mu.device))


def cvxpylayers_factor(n: int, K: int):
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    w = cp.Variable(n)
    Lp, sd, mup = cp.Parameter((n, K)), cp.Parameter(n, nonneg=True), cp.Parameter(n)
    obj = 0.5 * cp.sum_squares(Lp.T @ w) + 0.5 * cp.sum_squares(cp.multiply(sd, w)) - mup @ w
    layer = CvxpyLayer(cp.Problem(cp.Minimize(obj), [cp.sum(w) == 1, w >= 0]), parameters=[Lp, sd, mup], variables=[w])
    s = 1e-4  # same scaling as the others

    def solve(mu, L, d):
        (x,) = layer(L / s**0.5, (d / s).sqrt(), mu / s, solver_args={"eps": 1e-9})
        return x

    return solve


def fwd_bwd(fn, mu, L, d, repeats: int) -> tuple[float, torch.Tensor]:
    best, w = float("inf"), None
    c = torch.linspace(-1, 1, mu.shape[-1], dtype=mu.dtype, device=mu.device)
    for _ in range(repeats):
        m, Lg, dg = (t.clone().requires_grad_() for t in (mu, L, d))
        if mu.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        w = fn(m, Lg, dg)
        (w * c).sum().backward()
        if mu.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, w.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cvxpylayers", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    mu, L, d = problem(args.batch, args.n, args.k, device)
    rows = {}
    t, w_dense = fwd_bwd(dense, mu, L, d, args.repeats)
    rows["dense solve_qp"] = {"seconds": t, "max_abs_diff_vs_dense": 0.0}
    t, w = fwd_bwd(factor, mu, L, d, args.repeats)
    rows["factor solve_factor_qp"] = {"seconds": t, "max_abs_diff_vs_dense": float((w - w_dense).abs().max())}
    if not args.skip_cvxpylayers:
        layer = cvxpylayers_factor(args.n, args.k)
        t, w = fwd_bwd(layer, mu.cpu(), L.cpu(), d.cpu(), 1)
        rows["cvxpylayers (factor form)"] = {"seconds": t, "max_abs_diff_vs_dense": float((w - w_dense.cpu()).abs().max())}
    meta = {"n": args.n, "K": args.k, "batch": args.batch, "device": str(device), "torch_threads": torch.get_num_threads()}
    for name, row in rows.items():
        print(f"{name:28s} {row['seconds']:9.3f} s   |w - w_dense| {row['max_abs_diff_vs_dense']:.1e}")
    out = HERE / "results" / "factor_qp.json"
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
