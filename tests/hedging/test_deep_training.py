"""DeepHedgeTrainer: bitwise resume after a kill, settings refused on resume, keep_best, time-to-risk."""

from __future__ import annotations

import pytest
import torch

from gradfolio.errors import ConfigError
from gradfolio.hedging.deep import DeepHedgeConfig, GbmCallHedge, MlpHedge
from gradfolio.hedging.deep_training import DeepHedgeTrainer, seconds_to_reach

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trainer(tmp_path, n_steps=8, tracker=None, lr=1e-2):
    prob = GbmCallHedge(64, 5, cost=1e-3, dtype=torch.float64)
    val = GbmCallHedge(128, 5, cost=1e-3, dtype=torch.float64)
    return DeepHedgeTrainer(MlpHedge(hidden=(8,), seed=2, dtype=torch.float64), prob,
                            DeepHedgeConfig(risk="entropic", risk_aversion=20.0, lr=lr), val, n_steps=n_steps,
                            eval_every=2, checkpoint_every=3, checkpoint_dir=tmp_path, tracker=tracker)


def test_resume_after_kill_is_bitwise_identical(tmp_path, recording_tracker):
    full = _trainer(tmp_path / "full")
    full.train()
    killed = _trainer(tmp_path / "run", tracker=recording_tracker(kill_at=5))
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    resumed = _trainer(tmp_path / "run")
    resumed.load()
    assert resumed.step == 3  # the checkpoint of step 3; steps 4-5 are replayed
    resumed.train()
    for a, b in zip(full.policy.state_dict().values(), resumed.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in full.history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history]
    other = _trainer(tmp_path / "run", lr=1e-3)
    with pytest.raises(ConfigError, match="different settings"):
        other.load()


def test_keep_best_restores_the_lowest_validation_risk_and_time_to_reach(tmp_path):
    tr = _trainer(None, n_steps=10)
    tr.train()
    scores = [row["val_risk"] for row in tr.history if "val_risk" in row]
    assert tr.best is not None and tr.best[0] == min(scores)
    assert tr.validate() == pytest.approx(min(scores), rel=1e-12)
    assert seconds_to_reach(tr.history, min(scores)) == next(r["seconds"] for r in tr.history if r.get("val_risk") == min(scores))
    assert seconds_to_reach(tr.history, min(scores) - 1.0) is None
