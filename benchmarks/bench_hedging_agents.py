"""Training cost of the default GVDH agent against Cao et al.'s agent (``preset: cao``), side by side.

Both train in Cao et al.'s SABR 30-day, 1% setting (``docs/results/hedging_cao_sabr30.yaml``'s
environment, 256 paths per episode, float32, ``trainer.threads`` = 1): the default agent (64-64
networks, 32 quantiles, 2 updates per simulated day: 60 per episode) and ``preset: cao``
(LayerNorm 256x3 actor and 512-512-256 critic, 99 quantiles, 5-step targets, one update per 8
transitions: 960 per episode). After the two warm-up episodes, training episodes of the two
alternate for ``--rounds`` rounds in one process, so both see the same machine load; the table
gives the median seconds per episode and per update, their ratios, and how many episodes and
updates each completes in ``--budget-minutes`` (the issue's 30 minutes per agent) at that pace.

With ``--compiled`` a third contender trains the default agent on ``HedgingEnv(compiled=True)``
(no validation environment, like the other two, whose ``eval_every`` is 0): the training speed before
and after the compiled env.

Usage: ``python benchmarks/bench_hedging_agents.py [--rounds 3] [--budget-minutes 30] [--device cuda] [--compiled] [--skip-cao]``
(``OMP_NUM_THREADS=1`` on a shared machine). Writes ``benchmarks/results/hedging_agents.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from benchutil import device_arg

from gradfolio.experiments.hedging.train import HedgeTrainingConfig, build_trainer, load_training_config
from gradfolio.hedging.env import HedgingEnv
from gradfolio.hedging.rl import Trainer
from gradfolio.hedging.rl.training import make_agent
from gradfolio.io import atomic_write_json

CONFIG = Path(__file__).resolve().parents[1] / "docs" / "results" / "hedging_cao_sabr30.yaml"


def trainer_for(preset: str | None, device: str, compiled: bool = False):
    base = load_training_config(CONFIG)
    data = base.model_dump(mode="json", exclude={"preset", "agent", "trainer"})
    data["trainer"] = {"device": device, "eval_every": 0, "checkpoint_every": 0}
    if preset:
        data["preset"] = preset
    cfg = HedgeTrainingConfig.model_validate(data)
    if not compiled:
        return cfg, build_trainer(cfg)
    # The same trainer on HedgingEnv(compiled=True): the agent's networks seeded alike, no validation env.
    tr = cfg.trainer
    env = HedgingEnv(cfg.env, tr.n_paths, seed=0, device=device, dtype=getattr(torch, tr.dtype), compiled=True)
    return cfg, Trainer(make_agent(env, cfg.agent, tr.seed), env, None, **tr.trainer_kwargs())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget-minutes", type=float, default=30.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compiled", action="store_true",
                        help="add the default agent on HedgingEnv(compiled=True) (CPU): training speed with the compiled env")
    parser.add_argument("--skip-cao", action="store_true", help="leave out preset: cao (~2 min an episode on one core)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "hedging_agents.json"))
    args = parser.parse_args()
    device = str(device_arg(args.device))
    torch.set_num_threads(1)
    runs = {"default (gvdh)": trainer_for(None, device)}
    if not args.skip_cao:
        runs["preset: cao"] = trainer_for("cao", device)
    if args.compiled:
        runs["gvdh, compiled env"] = trainer_for(None, device, compiled=True)
    for _, trainer in runs.values():
        while trainer.episode < trainer.warmup_episodes:
            trainer.run_episode()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    updates: dict[str, list[int]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (_, trainer) in runs.items():
            before = trainer.updates
            start = time.perf_counter()
            trainer.run_episode()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[name].append(time.perf_counter() - start)
            updates[name].append(trainer.updates - before)
    budget = 60 * args.budget_minutes
    rows = {}
    print(f"{'agent':16s} {'s/episode':>10s} {'updates/ep':>11s} {'ms/update':>10s} {'episodes in budget':>19s} "
          f"{'updates in budget':>18s}")
    for name in runs:
        per_episode = statistics.median(seconds[name])
        n_updates = updates[name][-1]
        rows[name] = {"seconds_per_episode": per_episode, "updates_per_episode": n_updates,
                      "ms_per_update": 1e3 * per_episode / max(n_updates, 1),
                      "episodes_in_budget": budget / per_episode, "updates_in_budget": budget / per_episode * n_updates,
                      "all_seconds": seconds[name]}
        r = rows[name]
        print(f"{name:16s} {per_episode:10.2f} {n_updates:11d} {r['ms_per_update']:10.2f} "
              f"{r['episodes_in_budget']:19.0f} {r['updates_in_budget']:18.0f}")
    d = rows["default (gvdh)"]
    ratio_episode = ratio_update = None
    if "preset: cao" in rows:
        c = rows["preset: cao"]
        ratio_episode, ratio_update = c["seconds_per_episode"] / d["seconds_per_episode"], c["ms_per_update"] / d["ms_per_update"]
        print(f"preset: cao over default: {ratio_episode:.1f}x per episode, {ratio_update:.1f}x per update")
    if args.compiled:
        speedup = d["seconds_per_episode"] / rows["gvdh, compiled env"]["seconds_per_episode"]
        print(f"default agent, compiled env over default env: {speedup:.2f}x episodes per second")
    atomic_write_json(Path(args.out), {
        "rows": rows, "ratio_per_episode": ratio_episode, "ratio_per_update": ratio_update,
        "rounds": args.rounds, "budget_minutes": args.budget_minutes, "device": device, "threads": 1,
        "load_average": os.getloadavg(), "machine": platform.processor() or platform.machine(),
    })


if __name__ == "__main__":
    main()
