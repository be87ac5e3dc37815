"""Classical benchmark portfolios: batched gradfolio vs skfolio / PyPortfolioOpt one window at a time.

For ``B`` rebalance dates (rolling 252-day windows of the bundled 20 S&P 500 stocks, one every
5 days), each gradfolio portfolio computes all ``B`` weight vectors in one call; the peer fits
one estimator per window, as a backtest with skfolio does (timed on ``--peer-windows`` windows
and reported per window). The largest weight difference to the peer (float64, on the timed
peer windows) is reported next to the speed.

Prints a table and writes ``benchmarks/results/classical.json``.

Usage: ``python benchmarks/bench_classical.py [--device cpu|cuda] [--dtype float32|float64]
[--windows 64 512] [--peer-windows 16] [--only min_cvar max_calmar ...] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from pypfopt import HRPOpt
from skfolio import RiskMeasure
from skfolio.optimization import (
    HierarchicalRiskParity as SkHRP,
    InverseVolatility as SkInverseVolatility,
    MeanRisk,
    ObjectiveFunction,
    RiskBudgeting,
)

from benchutil import device_arg
from gradfolio.allocation import classical as cl
from gradfolio.data import load_prices, to_returns

HERE = Path(__file__).resolve().parent
RATIO = ObjectiveFunction.MAXIMIZE_RATIO


def cases() -> list[tuple[str, object, object]]:
    """(label, gradfolio portfolio, peer fit function frame -> weights)."""
    rows = [
        ("inverse_volatility", cl.InverseVolatility(), lambda f: SkInverseVolatility().fit(f).weights_),
        ("risk_parity", cl.RiskParity(), lambda f: RiskBudgeting().fit(f).weights_),
        ("hrp_single (PyPortfolioOpt)", cl.HierarchicalRiskParity(), lambda f: np.array(list(HRPOpt(f).optimize().values()))),
        ("hrp_ward_optimal (skfolio)", cl.HierarchicalRiskParity("ward", ordering="optimal"), lambda f: SkHRP().fit(f).weights_),
        ("min_cvar", cl.MinimumCVaR(), lambda f: MeanRisk(risk_measure=RiskMeasure.CVAR).fit(f).weights_),
        ("min_drawdown", cl.MinimumDrawdown(), lambda f: MeanRisk(risk_measure=RiskMeasure.MAX_DRAWDOWN).fit(f).weights_),
        (
            "max_calmar",
            cl.MaximumCalmar(),
            lambda f: MeanRisk(risk_measure=RiskMeasure.MAX_DRAWDOWN, objective_function=RATIO).fit(f).weights_,
        ),
        (
            "max_sortino",
            cl.MaximumSortino(target=None),
            lambda f: MeanRisk(risk_measure=RiskMeasure.SEMI_DEVIATION, objective_function=RATIO).fit(f).weights_,
        ),
    ]
    # skfolio's default objective scaling leaves 2e-4 (min variance) to 9e-4 (max Sharpe) weight
    # errors on daily variances (~1e-4); scale_objective=1e4 is its own remedy.
    variance = dict(risk_measure=RiskMeasure.VARIANCE, scale_objective=1e4)
    rows += [
        ("min_variance", cl.MinimumVariance(), lambda f: MeanRisk(**variance).fit(f).weights_),
        ("max_sharpe", cl.MaximumSharpe(), lambda f: MeanRisk(objective_function=RATIO, **variance).fit(f).weights_),
    ]
    return rows


def timed(fn, sync, repeats: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--windows", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--peer-windows", type=int, default=16)
    parser.add_argument("--lookback", type=int, default=252)
    parser.add_argument("--out", default=str(HERE / "results" / "classical.json"))
    parser.add_argument("--only", nargs="+", default=None, help="labels of the portfolios to run (default: all)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    device, dtype = device_arg(args.device), getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    returns = to_returns(load_prices("sp500"))
    L = args.lookback
    ends = np.arange(len(returns), L, -5)[::-1]
    rows = []
    print(f"{'portfolio':30s} {'B':>5s} {'gradfolio win/s':>16s} {'peer win/s':>11s} {'speed-up':>9s} {'max|dw|':>9s}")
    for label, model, peer in cases():
        if args.only is not None and label not in args.only:
            continue
        frames = [returns.iloc[e - L : e] for e in ends[-args.peer_windows :]]
        t_peer, peer_w = timed(lambda: np.stack([peer(f) for f in frames]), lambda: None)
        peer_rate = len(frames) / t_peer
        X_peer = torch.tensor(np.stack([f.to_numpy() for f in frames]))[:, None].to(device, dtype)
        ours = model(X_peer).double().cpu().numpy()
        err = float(np.abs(ours - peer_w).max())
        for B in args.windows:
            X = torch.tensor(np.stack([returns.iloc[e - L : e].to_numpy() for e in ends[-B:]]))[:, None]
            X = X.to(device, dtype)
            model(X[:2])  # warm-up
            t, _ = timed(lambda: model(X), sync, repeats=2)
            rate = X.shape[0] / t
            rows.append(
                {
                    "portfolio": label,
                    "windows": int(X.shape[0]),
                    "gradfolio_windows_per_s": rate,
                    "peer_windows_per_s": peer_rate,
                    "speedup": rate / peer_rate,
                    "max_abs_weight_diff": err,
                }
            )
            print(f"{label:30s} {X.shape[0]:5d} {rate:16.1f} {peer_rate:11.1f} {rate / peer_rate:9.1f} {err:9.1e}")
    result = {
        "benchmark": "classical",
        "device": str(device),
        "dtype": args.dtype,
        "lookback": L,
        "assets": returns.shape[1],
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
