"""Wall-clock to reach a CVaR95 target: deep hedging through the simulator vs the RL agents, over seeds.

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
and the best CVaR95 reached, for every training seed (``--seeds``: the networks' initialisation and
the training episodes; the validation batch is the same for all), then the mean and 95% t interval
over seeds (a seed that never reaches the target counts as ``--seconds``, so its mean is a lower
bound, marked ``>=``), and writes ``benchmarks/results/deep_vs_rl.json``.

Usage: ``python benchmarks/bench_deep_vs_rl.py [--seconds 150] [--seeds 0 1 2] [--threads 1] [--device cuda] [--methods deep gvdh anaddh]``
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
from gradfolio.stats.seeds import t_interval


def run_deep(env_cfg: EnvConfig, seconds: float, eval_every: int, seed: int = 0,
             device: str = "cpu") -> list[dict[str, float]]:
    env = HedgingEnv(env_cfg, 256, seed=0, device=device)
    val = HedgingEnv(env_cfg, 2000, seed=0, device=device)
    policy = EnvPolicy(env, DeepHedgeConfig(risk="cvar", level=0.95, lr=1e-3), seed=seed)
    start = time.process_time()
    policy.fit_scaler(seed=1)
    trainer = DeepHedgeTrainer(policy, lambda p, s: env_pnl(env, p, s), policy.config, lambda p, s: env_pnl(val, p, s),
                               n_steps=10**9, eval_every=eval_every, keep_best=False, seed=seed)
    rows = []
    while time.process_time() - start < seconds:
        row = trainer.train_step()
        if "val_risk" in row:
            rows.append({"seconds": time.process_time() - start, "cvar_95": row["val_risk"], "steps": row["step"]})
    return rows


def run_rl(env_cfg: EnvConfig, optimizer: str, seconds: float, eval_every: int, seed: int = 0,
           device: str = "cpu") -> list[dict[str, float]]:
    env = HedgingEnv(env_cfg, 256, seed=0, device=device)
    val = HedgingEnv(env_cfg, 2000, seed=0, device=device)
    agent = make_agent(env, AgentConfig(optimizer=optimizer, objective="cvar", level=0.95), seed=seed)
    trainer = Trainer(agent, env, val, n_episodes=10**6, eval_every=eval_every, keep_best=False, checkpoint_every=0,
                      seed=seed)
    start = time.process_time()
    rows = []
    while time.process_time() - start < seconds:
        row = trainer.run_episode()
        if "val_cvar_95" in row:
            rows.append({"seconds": time.process_time() - start, "cvar_95": row["val_cvar_95"], "steps": row["episode"]})
    return rows


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student t interval (0 for one value)."""
    if len(values) < 2:
        return float(values[0]), 0.0
    return t_interval(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (CPU time is then not the GPU's time)")
    parser.add_argument("--target", type=float, default=None)
    parser.add_argument("--methods", nargs="+", default=["deep", "gvdh", "anaddh"])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "deep_vs_rl.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    env_cfg = EnvConfig(time_to_go=True)
    val = HedgingEnv(env_cfg, 2000, seed=0, device=args.device)
    target = args.target
    if target is None:
        target = float(cvar(val.run_episode(baseline_policies(val, ["delta_gamma"])["delta_gamma"], VAL_SEED).total_pnl, 0.95))
    print(f"target: delta-gamma CVaR95 on the validation batch = {target:.3f}")
    results: dict = {"target": target, "seconds": args.seconds, "threads": args.threads, "seeds": args.seeds,
                      "device": args.device,
                      "methods": {}}
    for method in args.methods:
        per_seed = []
        for seed in args.seeds:
            rows = (run_deep(env_cfg, args.seconds, args.eval_every, seed, args.device) if method == "deep"
                    else run_rl(env_cfg, "adam" if method == "gvdh" else "ana", args.seconds, args.eval_every, seed,
                                args.device))
            reach = next((r["seconds"] for r in rows if r["cvar_95"] <= target), None)
            best = min((r["cvar_95"] for r in rows), default=float("nan"))
            per_seed.append({"seed": seed, "seconds_to_target": reach, "best_cvar_95": best, "history": rows})
            print(f"{method:8s} seed {seed}: time to target {'never' if reach is None else f'{reach:.1f} s'}  "
                  f"best CVaR95 {best:.3f} after {rows[-1]['steps'] if rows else 0:.0f} steps/episodes", flush=True)
        reach_all = [r["seconds_to_target"] if r["seconds_to_target"] is not None else args.seconds for r in per_seed]
        summary = {"seconds_to_target": interval(reach_all),
                   "reached_by": sum(r["seconds_to_target"] is not None for r in per_seed),
                   "best_cvar_95": interval([r["best_cvar_95"] for r in per_seed])}
        results["methods"][method] = {"summary": summary, "seeds": per_seed}
        lower = "" if summary["reached_by"] == len(per_seed) else ">="
        print(f"{method:8s} over {len(per_seed)} seeds: time to target {lower}{summary['seconds_to_target'][0]:.1f} "
              f"± {summary['seconds_to_target'][1]:.1f} s (reached by {summary['reached_by']}), best CVaR95 "
              f"{summary['best_cvar_95'][0]:.3f} ± {summary['best_cvar_95'][1]:.3f}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
