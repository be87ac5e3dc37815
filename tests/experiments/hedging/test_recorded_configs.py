"""Every hedging config recorded beside the results in docs/results/ loads and validates, with the
settings its results claim (a typo or a renamed field there would make a documented command fail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradfolio.experiments.hedging.sweep import load_sweep_config
from gradfolio.experiments.hedging.train import load_training_config

RESULTS = Path(__file__).resolve().parents[3] / "docs" / "results"
TRAINING = sorted(p for p in RESULTS.glob("hedging_*.yaml") if "sweep" not in p.name)


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.name)
def test_recorded_training_config_loads(path):
    cfg = load_training_config(path)
    assert cfg.evaluation.n_paths >= 5000  # every recorded table is tested on 5000+ paths


def test_recorded_configs_hold_the_claimed_settings():
    sabr30 = load_training_config(RESULTS / "hedging_cao_sabr30.yaml")
    assert (sabr30.env.market.beta, sabr30.env.market.rho, sabr30.env.market.days_per_year) == (1.0, -0.7, 250)
    assert (sabr30.env.cost, sabr30.env.hedge_maturity_days, sabr30.env.client_maturity_days) == (0.01, 30, 60)
    gbm = load_training_config(RESULTS / "hedging_cao_gbm.yaml")
    assert gbm.env.market.nu == 0.0 and gbm.env.cost == 0.005
    preset = load_training_config(RESULTS / "hedging_cao_preset_sabr30.yaml")
    assert preset.preset == "cao" and preset.trainer.n_episodes == 10 and preset.agent.n_quantiles == 99
    assert preset.trainer.transitions_per_update == 8 and preset.env == sabr30.env
    replay = load_training_config(RESULTS / "hedging_cao_sabr30_replay8.yaml")
    assert (replay.trainer.updates_per_step, replay.trainer.n_episodes) == (8, 200) and replay.env == sabr30.env


def test_recorded_sweep_config_loads():
    for path in RESULTS.glob("hedging_sweep*.yaml"):
        load_sweep_config(path)
