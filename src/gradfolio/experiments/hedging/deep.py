"""Train and evaluate a deep hedger (backpropagation through the simulator) from one config file.

``gradfolio hedge deep --config deep.yaml --out runs/deep``; every field optional::

    env:            # gradfolio.hedging.config.EnvConfig
      time_to_go: true
    deep:           # gradfolio.hedging.deep.DeepHedgeConfig (network, risk measure, learning rate)
      risk: cvar
      level: 0.95
    trainer:        # DeepTrainerConfig below
      n_steps: 500
      n_paths: 256
    evaluation:     # gradfolio.experiments.hedging.config.EvaluationConfig
      n_paths: 5000
    output_dir: runs/hedge_deep

A run folder holds ``config.yaml``, ``deep_checkpoint.pt`` (resumable), ``policy.pt`` (the trained
policy, read with ``weights_only=True``), ``history.csv`` (with the wall-clock ``seconds`` of every
step) and, after evaluation, the report files of
:func:`gradfolio.experiments.hedging.report.write_hedge_run` with the policy as ``deep`` beside
the baselines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from gradfolio.checkpoint import save_state
from gradfolio.errors import ConfigError
from gradfolio.experiments.config_io import dump_config
from gradfolio.experiments.hedging.config import EvaluationConfig
from gradfolio.experiments.hedging.report import write_hedge_run
from gradfolio.experiments.outputs import write_csv
from gradfolio.experiments.run_folder import RunFolder, check_run_folder
from gradfolio.hedging.baselines import baseline_policies
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.deep import DeepHedgeConfig, EnvPolicy, env_pnl
from gradfolio.hedging.deep_training import CHECKPOINT_NAME, DeepHedgeTrainer
from gradfolio.hedging.env import HedgingEnv
from gradfolio.hedging.evaluation import evaluate_policies, metrics_table
from gradfolio.hedging.rl.training import TRAIN_SEED_OFFSET
from gradfolio.progress import Progress
from gradfolio.seeding import resolve_device
from gradfolio.tracking import NullTracker, Tracker

POLICY_FILE = "policy.pt"


class DeepTrainerConfig(BaseModel):
    """Batches, steps, validation, checkpoints and placement of a deep-hedging run.

    Attributes
    ----------
    n_paths
        Paths simulated per gradient step.
    n_steps
        Gradient steps (each on a fresh batch).
    val_paths
        Paths of the validation batch.
    eval_every, keep_best, checkpoint_every, seed
        As :class:`gradfolio.hedging.deep_training.DeepHedgeTrainer`'s (``seed`` also seeds the network).
    device, dtype
        Placement and precision of the environments and the policy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_paths: int = Field(256, ge=2)
    n_steps: int = Field(500, ge=1)
    val_paths: int = Field(2000, ge=2)
    eval_every: int = Field(10, ge=0)
    keep_best: bool = True
    checkpoint_every: int = Field(100, ge=0)
    seed: int = Field(0, ge=0)
    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"


class DeepHedgeRunConfig(BaseModel):
    """Environment, deep hedger, trainer, test evaluation and output folder of one deep-hedging run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: EnvConfig = EnvConfig(time_to_go=True)
    deep: DeepHedgeConfig = DeepHedgeConfig()
    trainer: DeepTrainerConfig = DeepTrainerConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    output_dir: str = "runs/hedge_deep"


def build_deep_trainer(
    config: DeepHedgeRunConfig, run_dir: str | os.PathLike[str] | None = None, *,
    tracker: Tracker | None = None, progress: Progress | None = None,
) -> DeepHedgeTrainer:
    """The config as objects: training and validation environments, an :class:`EnvPolicy` and its trainer."""
    tr = config.trainer
    device, dtype = resolve_device(tr.device), getattr(torch, tr.dtype)
    env = HedgingEnv(config.env, tr.n_paths, seed=0, device=device, dtype=dtype)
    val = HedgingEnv(config.env, tr.val_paths, seed=0, device=device, dtype=dtype) if tr.eval_every else None
    policy = EnvPolicy(env, config.deep, seed=tr.seed)
    return DeepHedgeTrainer(
        policy, lambda p, s: env_pnl(env, p, s), config.deep,
        (lambda p, s: env_pnl(val, p, s)) if val is not None else None,
        n_steps=tr.n_steps, eval_every=tr.eval_every, keep_best=tr.keep_best, checkpoint_every=tr.checkpoint_every,
        seed=tr.seed, checkpoint_dir=run_dir, tracker=tracker, progress=progress,
        fingerprint={"env": config.env.model_dump(mode="json"), "n_paths": tr.n_paths, "val_paths": tr.val_paths,
                     "dtype": tr.dtype},
    )


def train_deep(
    config: DeepHedgeRunConfig, run_dir: str | os.PathLike[str] | None = None, *, resume: bool = False,
    tracker: Tracker | None = None, progress: Progress | None = None,
) -> tuple[EnvPolicy, Path]:
    """Train (or resume) a deep hedger; write ``config.yaml``, ``policy.pt`` and ``history.csv``.

    A fresh run fits the policy's feature scaler on one episode of random actions (seed
    ``TRAIN_SEED_OFFSET - 1 - trainer.seed``, disjoint from the training, validation and test seeds).
    """
    out = check_run_folder(run_dir or config.output_dir, "hedge")
    tracker = tracker if tracker is not None else NullTracker()
    trainer = build_deep_trainer(config, out, tracker=tracker, progress=progress)
    policy = trainer.policy
    assert isinstance(policy, EnvPolicy)
    if resume:  # read before the folder is opened: a missing or bad checkpoint creates nothing
        trainer.load()
    else:
        if (out / CHECKPOINT_NAME).exists():
            raise ConfigError(f"{out / CHECKPOINT_NAME} exists; pass --resume to continue it or choose a new --out folder.")
        policy.fit_scaler(TRAIN_SEED_OFFSET - 1 - config.trainer.seed)
    with RunFolder(out, "hedge") as run_folder:  # marked, locked; outputs staged and published at once
        trainer.train()
        stage = run_folder.stage
        dump_config(config, stage / "config.yaml")
        save_state(stage / POLICY_FILE, {"config": config.model_dump(mode="json"), "policy": policy.state_dict()})
        write_csv(pd.DataFrame(trainer.history), stage / "history.csv")
        run_folder.publish()
    return policy, out


def evaluate_deep(
    policy: EnvPolicy, config: DeepHedgeRunConfig, run_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """The policy (``deep``) and the configured baselines on the same test episodes; the report files in ``run_dir``."""
    ev = config.evaluation
    env = ev.make_env(config.env)
    policy_dtype = next(policy.parameters()).dtype

    def play(state: torch.Tensor) -> torch.Tensor:
        return policy.policy(state.to(policy_dtype)).to(state.dtype)

    results = evaluate_policies(env, {**baseline_policies(env, ev.strategies), "deep": play}, ev.n_episodes, ev.seed)
    table = metrics_table(results, ev.level, ev.risk_aversion)
    if run_dir is not None:
        write_hedge_run(run_dir, config, table, results, title="Deep hedging vs baselines", add=True)
    return table


__all__ = ["DeepTrainerConfig", "DeepHedgeRunConfig", "build_deep_trainer", "train_deep", "evaluate_deep", "POLICY_FILE"]
