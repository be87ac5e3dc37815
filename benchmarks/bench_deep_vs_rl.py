"""Wall-clock to reach a CVaR95 target: deep hedging through the simulator vs the RL agents (one seed).

Time is the process's CPU time (``time.process_time``): with one torch thread it is the
wall-clock of an otherwise idle core, and it is not inflated when other jobs share the cores.
On the default 30-day market (``EnvConfig(time_to_go=True)``, float32), every method trains for
``--seconds`` of CPU time on 256 paths per episode / gradient step and is validated every
``--eval-every`` episodes / steps on the RL trainer's validation batch (2000 paths, ``VAL_SEED``):

- ``deep``: :class:`gradfolio.hedging.deep.EnvPolicy` (64-64, the agents' state and action map)
  trained by :class:`gradfolio.hedging.deep_training.DeepHedgeTrainer` on CVaR95 of the total P&L;
- ``gvdh`` / ``anaddh``: the default distributional agents with the ``cvar`` objective (level 0.95).

The target is the delta-gamma baseline's CVaR95 on the same validation batch (``--target``
overrides it). Prints, per method, the first time the validation CVaR95 is at or below the target
and the best CVaR95 reached, and writes ``benchmarks/results/deep_vs_rl.json``. One training
seed, shared CPU cores: an anecdote, not a benchmark of record.

Usage: ``python benchmarks/bench_deep_vs_rl.py [--seconds 150] [--threads 1] [--methods deep gvdh anaddh]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from gradfolio.hedging import EnvConfig, HedgingEnv
from gradfolio.hedging.baselines import baseline_policies
from gradfolio.hedging.deep import DeepHedgeConfig, EnvPolicy, env_pnl
from gradfolio.hedging.deep_training import DeepHedgeTrainer
from gradfolio.hedging.rl import AgentConfig, Trainer, make_agent
from gradfolio.hedging.rl.training import VAL_SEED
from gradfolio.risk import cvar


def run_deep(env_cfg: EnvConfig, seconds: float, eval_every: int) -> list[dict[str, float]]:
    env = HedgingEnv(env_cfg, 256, seed=0)
    val = HedgingEnv(env_cfg, 2000, seed=0)
    policy = EnvPolicy(env, DeepHedgeConfig(risk="cvar", level=0.95, lr=1e-3), seed=0)
    start = time.process_time()
    policy.fit_scaler(seed=1)
    trainer = DeepHedgeTrainer(policy, lambda p, s: env_pnl(env, p, s), policy.config, lambda p, s: env_pnl(val, p, s),
                               n_steps=10**9, eval_every=eval_every, keep_best=False)
    rows = []
    while time.process_time() - start < seconds:
        row = trainer.train_step()
        if "val_risk" in row:
            rows.append({"seconds": time.process_time() - start, "cvar_95": row["val_risk"], "steps": row["step"]})
    return rows


def run_rl(env_cfg: EnvConfig, optimizer: str, seconds: float, eval_every: int) -> list[dict[str, float]]:
    env = HedgingEnv(env_cfg, 256, seed=0)
    val = HedgingEnv(env_cfg, 2000, seed=0)
    agent = make_agent(env, AgentConfig(optimizer=optimizer, objective="cvar", level=0.95), seed=0)
    trainer = Trainer(agent, env, val, n_episodes=10**6, eval_every=eval_every, keep_best=False, checkpoint_every=0)
    start = time.process_time()
    rows = []
    while time.process_time() - start < seconds:
        row = trainer.run_episode()
        if "val_cvar_95" in row:
            rows.append({"seconds": time.process_time() - start, "cvar_95": row["val_cvar_95"], "steps": row["episode"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--target", type=float, default=None)
    parser.add_argument("--methods", nargs="+", default=["deep", "gvdh", "anaddh"])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "deep_vs_rl.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env_cfg = EnvConfig(time_to_go=True)
    val = HedgingEnv(env_cfg, 2000, seed=0)
    target = args.target
    if target is None:
        target = float(cvar(val.run_episode(baseline_policies(val, ["delta_gamma"])["delta_gamma"], VAL_SEED).total_pnl, 0.95))
    print(f"target: delta-gamma CVaR95 on the validation batch = {target:.3f}")
    results = {"target": target, "seconds": args.seconds, "threads": args.threads, "methods": {}}
    for method in args.methods:
        rows = (run_deep(env_cfg, args.seconds, args.eval_every) if method == "deep"
                else run_rl(env_cfg, "adam" if method == "gvdh" else "ana", args.seconds, args.eval_every))
        reach = next((r["seconds"] for r in rows if r["cvar_95"] <= target), None)
        best = min((r["cvar_95"] for r in rows), default=float("nan"))
        results["methods"][method] = {"seconds_to_target": reach, "best_cvar_95": best, "history": rows}
        print(f"{method:8s} time to target: {'never' if reach is None else f'{reach:.1f} s'}  best CVaR95 {best:.3f} "
              f"after {rows[-1]['steps'] if rows else 0:.0f} steps/episodes")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
