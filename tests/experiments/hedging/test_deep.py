"""``gradfolio hedge deep``: a tiny deep-hedging run through the CLI, its report beside the baselines,
resume, and the policy file read back."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from gradfolio.checkpoint import load_state
from gradfolio.cli import app
from gradfolio.experiments.config_io import dump_config
from gradfolio.experiments.hedging.config import EvaluationConfig
from gradfolio.experiments.hedging.deep import (
    POLICY_FILE,
    DeepHedgeRunConfig,
    DeepTrainerConfig,
    build_deep_trainer,
)
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.deep import DeepHedgeConfig, EnvPolicy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config() -> DeepHedgeRunConfig:
    return DeepHedgeRunConfig(
        env=EnvConfig(n_days=5, time_to_go=True), deep=DeepHedgeConfig(hidden=(8,), risk="entropic", risk_aversion=0.1),
        trainer=DeepTrainerConfig(n_paths=16, n_steps=3, val_paths=16, eval_every=1, checkpoint_every=1, seed=4),
        evaluation=EvaluationConfig(n_paths=20, strategies=["delta", "delta_gamma"]),
    )


def test_cli_deep_trains_evaluates_and_resumes(tmp_path):
    dump_config(_config(), tmp_path / "deep.yaml")
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(app, ["hedge", "deep", "--config", str(tmp_path / "deep.yaml"), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"delta", "delta_gamma", "deep"}
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 3 and history["seconds"].is_monotonic_increasing and "val_risk" in history
    res = runner.invoke(app, ["hedge", "deep", "--config", str(tmp_path / "deep.yaml"), "--out", str(out)])
    assert res.exit_code == 2 and "--resume" in res.output
    res = runner.invoke(app, ["hedge", "deep", "--config", str(tmp_path / "deep.yaml"), "--out", str(out), "--resume",
                              "--steps", "5", "--no-progress", "--no-evaluate"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out / "history.csv")) == 5
    state = load_state(out / POLICY_FILE, owner="test")
    trainer = build_deep_trainer(_config())
    trainer.policy.load_state_dict(state["policy"])
    assert isinstance(trainer.policy, EnvPolicy) and float(trainer.policy.scaler.std.min()) > 0
    res = runner.invoke(app, ["hedge", "deep", "--risk", "var", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "option --risk" in res.output


def test_build_deep_trainer_seeds_the_policy_and_fingerprints_the_env():
    a, b = build_deep_trainer(_config()), build_deep_trainer(_config())
    for x, y in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert torch.equal(x, y)
    other = _config().model_copy(update={"trainer": _config().trainer.model_copy(update={"seed": 5})})
    assert not torch.equal(next(build_deep_trainer(other).policy.parameters()), next(a.policy.parameters()))
    assert a.fingerprint()["env"]["n_days"] == 5 and a.fingerprint()["n_paths"] == 16
