"""Train and evaluate a distributional hedging agent from one config file (``gradfolio hedge train``).

A YAML/TOML file with these sections, every field optional (defaults = the paper's setting)::

    preset: cao     # optional: Cao et al.'s agent (AgentConfig.cao()) and trainer (CAO_TRAINER);
                    # the agent: / trainer: fields given below still override it (or write agent: cao)
    env:            # gradfolio.hedging.config.EnvConfig (market, book, costs, action, reward)
      market: {sigma0: 0.3, nu: 0.3}
      time_to_go: true
    agent:          # gradfolio.hedging.rl.agent.AgentConfig
      optimizer: ana          # ana = ANADDH, adam = GVDH
      objective: mean_std     # mean | mean_std | var | cvar
    trainer:        # gradfolio.experiments.hedging.config.TrainerConfig
      n_episodes: 300
      n_paths: 256
      device: cpu
    evaluation:     # gradfolio.experiments.hedging.config.EvaluationConfig (test episodes, baselines)
      n_paths: 5000
    output_dir: runs/hedge_agent

Load it with ``load_config(HedgeTrainingConfig, path)``. A run folder holds ``config.yaml``,
``checkpoint.pt`` (resumable), ``agent.pt`` (the trained agent), ``history.csv`` and, after
evaluation, the files of :func:`gradfolio.experiments.hedging.report.write_hedge_run`
(``metrics.json``/``.md``, ``pnl.parquet``, ``pnl_hist.png``, ``report.html``).

:func:`build_trainer` is where the config becomes objects: the training and validation
environments (:func:`gradfolio.hedging.rl.make_env`), the agent (:func:`gradfolio.hedging.rl.make_agent`)
and a :class:`gradfolio.hedging.rl.Trainer` that receives them. ``checkpoint.pt`` and ``agent.pt``
are read with ``torch.load(weights_only=True)`` (:mod:`gradfolio.checkpoint`): a crafted file is
refused with a :class:`~gradfolio.errors.ConfigError` without running any of its code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, model_validator

from gradfolio.checkpoint import load_state, save_state
from gradfolio.errors import ConfigError
from gradfolio.experiments.config_io import dump_config, flatten_params, load_config, parse_config
from gradfolio.experiments.hedging.config import CAO_TRAINER, EvaluationConfig, TrainerConfig
from gradfolio.experiments.hedging.report import write_hedge_run
from gradfolio.experiments.outputs import write_csv
from gradfolio.experiments.run_folder import RunFolder, check_run_folder
from gradfolio.hedging.baselines import baseline_policies
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.env import Episode
from gradfolio.hedging.evaluation import evaluate_policies, metrics_table
from gradfolio.hedging.rl.agent import AgentConfig, DistributionalAgent
from gradfolio.hedging.rl.training import Trainer, make_agent, make_env
from gradfolio.progress import Progress
from gradfolio.seeding import resolve_device
from gradfolio.threads import intra_op_threads
from gradfolio.tracking import NullTracker, Tracker

AGENT_FILE = "agent.pt"


Preset = Literal["cao"]
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "cao": (AgentConfig.cao().model_dump(exclude_unset=True), CAO_TRAINER),
}
"""``preset name -> (agent fields, trainer fields)`` of :attr:`HedgeTrainingConfig.preset`."""


class HedgeTrainingConfig(BaseModel):
    """Environment, agent, trainer, test evaluation and output folder of one agent run.

    ``preset: cao`` (or ``agent: cao``) starts the ``agent`` and ``trainer`` sections from Cao et
    al.'s agent (:meth:`AgentConfig.cao` and ``CAO_TRAINER``); fields written in those sections
    override the preset's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Preset | None = None
    env: EnvConfig = EnvConfig(time_to_go=True)
    agent: AgentConfig = AgentConfig()
    trainer: TrainerConfig = TrainerConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    output_dir: str = "runs/hedge_agent"

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("agent"), str):
            if data.get("preset") not in (None, data["agent"]):
                raise ValueError(f"agent: {data['agent']} and preset: {data['preset']} disagree; keep one")
            data["preset"], data["agent"] = data["agent"], {}
        name = data.get("preset")
        if not isinstance(name, str) or name not in PRESETS:
            return data  # an unknown name is reported by the field's own validation
        agent, trainer = PRESETS[name]
        for section, preset in (("agent", agent), ("trainer", trainer)):
            given = data.get(section) or {}
            if isinstance(given, BaseModel):
                given = given.model_dump(exclude_unset=True)
            if isinstance(given, dict):
                data[section] = {**preset, **given}
        return data

    @property
    def agent_name(self) -> str:
        """``"cao"`` for ``preset: cao``; else ``"anaddh"`` for the ANA optimizer, ``"gvdh"`` for Adam."""
        if self.preset is not None:
            return self.preset
        return "anaddh" if self.agent.optimizer == "ana" else "gvdh"


def load_training_config(path: str | os.PathLike[str] | None) -> HedgeTrainingConfig:
    """The config in ``path`` (YAML/TOML), or the defaults when ``None``."""
    return HedgeTrainingConfig() if path is None else load_config(HedgeTrainingConfig, path)


def run_params(config: HedgeTrainingConfig) -> dict[str, Any]:
    """The flat parameters logged to MLflow for a run: ``agent_name`` and every field (``agent.optimizer``...)."""
    return {"agent_name": config.agent_name, **flatten_params(config.model_dump(mode="json"))}


def seeded(cfg: HedgeTrainingConfig, seed: int | None) -> HedgeTrainingConfig:
    """``cfg`` with ``trainer.seed`` replaced by ``seed`` (validated); ``cfg`` itself when ``seed`` is ``None``."""
    if seed is None:
        return cfg
    data = cfg.model_dump(mode="json")
    data["trainer"]["seed"] = seed
    return HedgeTrainingConfig.model_validate(data)


def build_trainer(
    config: HedgeTrainingConfig,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    tracker: Tracker | None = None,
    progress: Progress | None = None,
) -> Trainer:
    """The config as objects: environments, agent and a :class:`~gradfolio.hedging.rl.Trainer` holding them.

    The training environment has ``trainer.n_paths`` paths, the validation one ``trainer.val_paths``,
    both on ``trainer.device`` in ``trainer.dtype``; the agent's networks are seeded with
    ``trainer.seed``. ``run_dir`` is the checkpoint folder (``None``: no checkpoints).
    """
    tr = config.trainer
    device, dtype = resolve_device(tr.device), getattr(torch, tr.dtype)
    env = make_env(config.env, tr.n_paths, device, dtype)
    val_env = make_env(config.env, tr.val_paths, device, dtype)
    agent = make_agent(env, config.agent, tr.seed)
    return Trainer(agent, env, val_env, **tr.trainer_kwargs(), checkpoint_dir=run_dir, tracker=tracker,
                   progress=progress)


def train_agent(
    config: HedgeTrainingConfig,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    tracker: Tracker | None = None,
    progress: Progress | None = None,
) -> tuple[DistributionalAgent, Path]:
    """Train (or resume) an agent and write ``config.yaml``, ``agent.pt`` and ``history.csv``.

    Parameters
    ----------
    config
        The run's settings.
    run_dir
        Run folder (default ``config.output_dir``).
    resume
        Continue from ``run_dir/checkpoint.pt`` (an error if it is missing, unreadable or was
        written with other settings); otherwise start afresh.
    tracker
        A :class:`~gradfolio.tracking.Tracker` for parameters and per-episode metrics.
    progress
        A :class:`~gradfolio.progress.Progress` called after every episode (``gradfolio hedge train``
        draws it as a bar); ``None`` for none.

    Returns
    -------
    ``(agent, run_dir)``.
    """
    out = check_run_folder(run_dir or config.output_dir, "hedge")
    tracker = tracker if tracker is not None else NullTracker()
    trainer = build_trainer(config, out, tracker=tracker, progress=progress)
    if resume:  # read before the folder is opened: a missing or bad checkpoint creates nothing
        trainer.load()
    elif trainer.checkpoint_path is not None and trainer.checkpoint_path.exists():
        raise ConfigError(f"{trainer.checkpoint_path} exists; pass --resume to continue it or choose a new --out folder.")
    with RunFolder(out, "hedge") as run_folder, intra_op_threads(config.trainer.threads):
        tracker.log_params(run_params(config))
        agent = trainer.train()
        # the outputs are staged and published at once: a kill until here leaves the previous run
        stage = run_folder.stage
        dump_config(config, stage / "config.yaml")
        save_state(stage / AGENT_FILE, {"config": config.model_dump(mode="json"), "agent": agent.full_state_dict()})
        write_csv(pd.DataFrame(trainer.history), stage / "history.csv")
        run_folder.publish()
    return agent, out


def load_agent(run_dir: str | os.PathLike[str], device: str | None = None) -> tuple[DistributionalAgent, HedgeTrainingConfig]:
    """The trained agent of a run folder and its config (``device`` overrides the training device).

    The networks hold what training ended with: ANA's iterates ``theta^r`` (then, with
    ``keep_best``, the best validated actor), see :mod:`gradfolio.hedging.rl.training`.

    Raises
    ------
    ConfigError
        No ``agent.pt``; a truncated, foreign or unsafe one (read with ``weights_only=True``: a
        crafted file is refused without running code); a config in it that does not validate.
    """
    path = Path(run_dir) / AGENT_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: no trained agent here; run 'gradfolio hedge train --out {run_dir}' first.")
    state = load_state(path, map_location=resolve_device(device), owner="load_agent")
    if not isinstance(state.get("config"), dict) or not isinstance(state.get("agent"), dict):
        raise ConfigError(f"load_agent: {path} is not an agent file (no config and agent state); train again.")
    config = parse_config(HedgeTrainingConfig, state["config"], where=str(path))
    tr = config.trainer
    env = make_env(config.env, 2, device or tr.device, getattr(torch, tr.dtype))
    agent = make_agent(env, config.agent, tr.seed)
    agent.load_full_state_dict(state["agent"])
    return agent, config


def evaluate_agent(
    agent: DistributionalAgent,
    config: HedgeTrainingConfig,
    run_dir: str | os.PathLike[str] | None = None,
    tracker: Tracker | None = None,
) -> tuple[pd.DataFrame, dict[str, Episode]]:
    """Play the agent and the configured baselines on the same test episodes.

    The test episodes use ``config.evaluation`` (paths, episodes, seed, precision), disjoint from
    the training and validation seeds. With ``run_dir`` the report files are written there.

    Returns
    -------
    ``(table, results)``: one row per strategy (the agent under :attr:`HedgeTrainingConfig.agent_name`)
    and the episodes.
    """
    ev = config.evaluation
    env = ev.make_env(config.env)
    policies = {**baseline_policies(env, ev.strategies), config.agent_name: agent.policy}
    with intra_op_threads(config.trainer.threads):
        results = evaluate_policies(env, policies, ev.n_episodes, ev.seed)
    table = metrics_table(results, ev.level, ev.risk_aversion)
    if run_dir is not None:
        write_hedge_run(run_dir, config, table, results, title=f"{config.agent_name.upper()} vs baselines", add=True)
    if tracker is not None:
        tracker.log_metrics({f"test.{s}.{m}": v for s, row in table.to_dict(orient="index").items() for m, v in row.items()})
        if run_dir is not None:
            tracker.log_artifact(run_dir)
    return table, results


__all__ = [
    "HedgeTrainingConfig", "load_training_config", "run_params", "build_trainer", "train_agent", "load_agent",
    "evaluate_agent", "seeded", "AGENT_FILE",
]
