"""ANA vs Adam: steps to a tolerance on ill-conditioned problems, and the cost of one step.

1. **Convergence.** Full-batch steps until ``f(theta) - f* < 1e-6 max(1, |f*|)`` (at most
   4000) on rotated quadratics (n = 50, condition number 1e4) and L2-regularised logistic
   regressions with badly scaled features (500 x 20, ``f*`` from SciPy's L-BFGS-B). Each variant
   gets its best step size over ``lr in {0.1, 0.03, 0.01, 0.003}``: Adam with ``beta1`` 0.9 and
   0.5, ANA (``betas=(0.5, 0.999)``) with and without gradient restart, and ANA with Adam's
   ``betas=(0.9, 0.999)``. The two tuned rows give both methods the same budget, 8 settings:
   Adam over lr x beta1, ANA over lr x restart.
2. **Step time.** Wall time of ``optimizer.step()`` on an MLP (about 1.1M parameters), ANA vs
   ``torch.optim.Adam`` (default foreach implementation), on ``--device`` in ``--dtype``.

Prints a table and writes ``benchmarks/results/ana.json``.
Usage: ``python benchmarks/bench_ana.py [--device cpu|cuda] [--dtype float32|float64]``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import scipy.optimize
import torch

from benchutil import device_arg
from gradfolio.io import atomic_write_json
from gradfolio.optim import ANA

LRS = (0.1, 0.03, 0.01, 0.003)
MAX_STEPS = 4000
VARIANTS = {  # name -> (p, lr) -> optimizer
    "adam_b0.9": lambda p, lr: torch.optim.Adam(p, lr=lr),
    "adam_b0.5": lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.5, 0.999)),
    "ana_restart": lambda p, lr: ANA(p, lr=lr),
    "ana_plain": lambda p, lr: ANA(p, lr=lr, restart="none"),
    "ana_restart_b0.9": lambda p, lr: ANA(p, lr=lr, betas=(0.9, 0.999)),
}
TUNED = {"adam": ("adam_b0.9", "adam_b0.5"), "ana": ("ana_restart", "ana_plain")}


def quadratic(n: int, cond: float, seed: int, dtype: torch.dtype, device: torch.device):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    a = (q @ torch.diag(torch.logspace(0, math.log10(cond), n, dtype=torch.float64)) @ q.T).to(device, dtype)
    b = torch.randn(n, generator=gen, dtype=torch.float64).to(device, dtype)
    x_star = torch.linalg.solve(a.double(), b.double())
    return (lambda x: 0.5 * x @ a @ x - b @ x), float(-0.5 * b.double() @ x_star), n


def logistic(seed: int, dtype: torch.dtype, device: torch.device, n: int = 500, d: int = 20, lam: float = 1e-2):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64) * torch.logspace(0, 1.5, d, dtype=torch.float64)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    y = (torch.rand(n, generator=gen, dtype=torch.float64) < torch.sigmoid(x @ w / 5)).double()

    def f(theta):
        xx, yy = x.to(theta), y.to(theta)
        return torch.nn.functional.binary_cross_entropy_with_logits(xx @ theta, yy) + 0.5 * lam * theta @ theta

    def f_np(theta):
        t = torch.tensor(theta, requires_grad=True)
        loss = f(t)
        loss.backward()
        return loss.item(), t.grad.numpy()

    res = scipy.optimize.minimize(f_np, np.zeros(d), jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10_000})
    return f, float(res.fun), d


def steps_to_tol(make, f, f_star, n, dtype, device, tol=1e-6, max_steps=MAX_STEPS):
    x = torch.zeros(n, dtype=dtype, device=device, requires_grad=True)
    opt = make([x])
    for k in range(max_steps):
        opt.zero_grad()
        f(x).backward()
        opt.step()
        cur = opt.iterates()[0] if isinstance(opt, ANA) else x.detach()
        if float(f(cur)) - f_star < tol * max(1.0, abs(f_star)):
            return k + 1
    return max_steps


def best_steps(make, f, f_star, n, dtype, device):
    """Fewest steps over ``LRS`` (a run stops once it cannot beat the best so far)."""
    best = MAX_STEPS
    for lr in LRS:
        best = min(best, steps_to_tol(lambda p, lr=lr: make(p, lr), f, f_star, n, dtype, device, max_steps=best))
    return best


def step_time(make, device, dtype, repeats=50):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 512),
                                torch.nn.ReLU(), torch.nn.Linear(512, 1)).to(device, dtype)
    opt = make(model.parameters())
    x = torch.randn(64, 512, device=device, dtype=dtype)
    model(x).pow(2).mean().backward()
    for _ in range(5):
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    args = parser.parse_args()
    device, dtype = device_arg(args.device), getattr(torch, args.dtype)
    problems = {
        "quadratic_cond1e4_s0": quadratic(50, 1e4, 0, dtype, device),
        "quadratic_cond1e4_s1": quadratic(50, 1e4, 1, dtype, device),
        "logistic_s0": logistic(0, dtype, device),
        "logistic_s1": logistic(1, dtype, device),
    }
    conv: dict[str, dict[str, int]] = {}
    columns = [*VARIANTS, *TUNED]
    print(f"steps to 1e-6 relative gap (best lr of {LRS}; {MAX_STEPS} = not reached), device={device}, "
          f"dtype={args.dtype}")
    print(f"{'problem':22s}" + "".join(f"{m:>17s}" for m in columns) + f"{'adam/ana':>10s}")
    for name, (f, f_star, n) in problems.items():
        conv[name] = {m: best_steps(mk, f, f_star, n, dtype, device) for m, mk in VARIANTS.items()}
        conv[name].update({m: min(conv[name][v] for v in variants) for m, variants in TUNED.items()})
        ratio = conv[name]["adam"] / conv[name]["ana"]
        print(f"{name:22s}" + "".join(f"{conv[name][m]:17d}" for m in columns) + f"{ratio:10.2f}")
    makers = {"adam": VARIANTS["adam_b0.9"], "ana": VARIANTS["ana_restart"]}
    times = {m: step_time(lambda p, mk=mk: mk(p, 1e-3), device, dtype) for m, mk in makers.items()}
    print(f"\noptimizer.step() on a 1.1M-parameter MLP: adam {times['adam']:.3f} ms, ana {times['ana']:.3f} ms "
          f"(ana/adam = {times['ana'] / times['adam']:.2f})")
    out = Path(__file__).resolve().parent / "results" / "ana.json"
    atomic_write_json(out, {"device": str(device), "dtype": args.dtype, "lrs": LRS, "steps_to_tol": conv,
                            "step_ms": times, "torch": torch.__version__})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
