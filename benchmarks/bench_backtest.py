"""Walk-forward backtest speed: the batched engine vs a date-by-date loop (the usual design).

On the bundled 20 S&P 500 stocks (``--start`` to 2022, lookback 60) with 10 bps costs, for each
rebalance frequency ``k``:

- ``gradfolio``: :func:`gradfolio.backtest.walk_forward` — every strategy allocates all its
  rebalance dates in ONE batched call, then drift and costs of all strategies and periods are one
  tensor computation;
- ``loop``: the design of a typical hand-written backtest — at each rebalance date each strategy
  is called on that one window (batch of 1), then the holdings are drifted day by day in NumPy.

Both run the same strategies (1/N, inverse volatility, risk parity, HRP and a small MLP network),
and the loop's net daily returns are checked against the engine's (float64) before timing.
Prints a table and writes ``benchmarks/results/backtest.json``.

Usage: ``python benchmarks/bench_backtest.py [--device cpu|cuda] [--dtype float32|float64]
[--start 2016-01-01] [--every 1 5 21] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchutil import device_arg
from gradfolio.allocation.classical import EqualWeight, HierarchicalRiskParity, InverseVolatility, RiskParity
from gradfolio.backtest import decision_windows, walk_forward
from gradfolio.data import load_prices, to_returns
from gradfolio.io import atomic_write_json

HERE = Path(__file__).resolve().parent
LOOKBACK, RATE = 60, 0.001


class MLP(torch.nn.Module):
    """A small allocation network ``X (B, 1, L, N) -> softmax weights (B, N)``."""

    def __init__(self, lookback: int, n: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(lookback * n, 64), torch.nn.ReLU(),
                                       torch.nn.Linear(64, n))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(X), dim=-1)


def strategies(n: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    out = {"equal_weight": EqualWeight(), "inverse_volatility": InverseVolatility(), "risk_parity": RiskParity(),
           "hrp": HierarchicalRiskParity(), "mlp": MLP(LOOKBACK, n)}
    return {k: v.to(device=device, dtype=dtype) for k, v in out.items()}


def loop_backtest(strats: dict, returns: pd.DataFrame, k: int, device: torch.device, dtype: torch.dtype) -> np.ndarray:
    """Date-by-date reference: one strategy call per rebalance date, holdings drifted day by day."""
    windows, first = decision_windows(returns, LOOKBACK, rebalance_every=k)
    R = returns.to_numpy()
    out = np.empty((len(strats), len(windows) * k))
    for s, strat in enumerate(strats.values()):
        wealth, holdings, day = 1.0, np.zeros(R.shape[1]), 0
        for p in range(len(windows)):
            with torch.no_grad():
                w = strat(windows.X[p : p + 1].to(device=device, dtype=dtype))[0].double().cpu().numpy()
            after = wealth * (1.0 - RATE * np.abs(w - holdings / wealth).sum())
            holdings, cash = w * after, after * (1.0 - w.sum())
            for j in range(k):
                holdings = holdings * (1.0 + R[first + p * k + 1 + j])
                new = holdings.sum() + cash
                out[s, day] = new / wealth - 1.0
                wealth, day = new, day + 1
    return out


def timed(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--start", default="2016-01-01")
    parser.add_argument("--every", type=int, nargs="+", default=[1, 5, 21])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device, dtype = device_arg(args.device), getattr(torch, args.dtype)
    prices = load_prices("sp500")
    returns = to_returns(prices.loc[pd.Timestamp(args.start) :])
    strats = strategies(returns.shape[1], device, dtype)
    rows = []
    for k in args.every:
        def engine(k: int = k):
            return walk_forward(strats, returns, LOOKBACK, rebalance_every=k, cost=RATE, device=device, dtype=dtype)

        t_engine, result = timed(engine, args.repeats)
        t_loop, looped = timed(lambda k=k: loop_backtest(strats, returns, k, device, dtype), 1)
        diff = float(np.abs(result.returns.to_numpy().T - looped).max())
        if args.dtype == "float64" and diff > 1e-9:
            raise SystemExit(f"loop and engine disagree by {diff:.2e} for k={k}")
        rows.append({"rebalance_every": k, "rebalances": len(result.turnover), "days": len(result.returns),
                     "strategies": len(strats), "gradfolio_s": t_engine, "loop_s": t_loop,
                     "speedup": t_loop / t_engine, "max_abs_diff": diff})
    print(f"{'k':>4} {'rebal':>6} {'days':>6} {'gradfolio s':>12} {'loop s':>9} {'speedup':>8} {'max |diff|':>11}")
    for r in rows:
        print(f"{r['rebalance_every']:>4} {r['rebalances']:>6} {r['days']:>6} {r['gradfolio_s']:>12.3f} "
              f"{r['loop_s']:>9.3f} {r['speedup']:>7.1f}x {r['max_abs_diff']:>11.1e}")
    meta = {"device": str(device), "dtype": args.dtype, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(), "assets": returns.shape[1],
            "strategies": list(strats), "lookback": LOOKBACK, "cost": RATE}
    suffix = "" if args.device == "cpu" else f"_{device.type}"
    atomic_write_json(HERE / "results" / f"backtest{suffix}.json", {"meta": meta, "rows": rows})


if __name__ == "__main__":
    main()
