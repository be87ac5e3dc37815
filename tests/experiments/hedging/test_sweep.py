"""Sweeps of RL hedge trainings: overrides validated, every distinct point trained once, a two-point
Ray sweep equal to the serial run."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gradfolio.errors import ConfigError
from gradfolio.experiments.hedging.train import HedgeTrainingConfig
from gradfolio.experiments.hedging.sweep import SweepConfig, apply_overrides, grid_points, run_sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sweep_overrides_are_validated():
    base = HedgeTrainingConfig()
    assert apply_overrides(base, {"env.market.nu": 0.8}, "x").env.market.nu == 0.8
    with pytest.raises(ConfigError, match="unknown field 'nuu'"):
        apply_overrides(base, {"env.market.nuu": 0.8}, "x")
    with pytest.raises(ConfigError, match="x"):
        apply_overrides(base, {"env.cost": -1.0}, "x")
    points = grid_points(SweepConfig())
    assert len(points) == (2 + 4 + 2 + 2 + 2) * 2
    assert {(p[2], p[3].agent.optimizer) for p in points} == {("gvdh", "adam"), ("anaddh", "ana")}


def test_sweep_trains_each_distinct_point_once(tmp_path, tiny_hedge):
    experiments = {"cost": {"0.2%": {"env.cost": 0.002}, "base": {}}, "again": {"base": {}}}
    cfg = SweepConfig(base=tiny_hedge.run, agents=["gvdh", "anaddh"], experiments=experiments, executor="serial")
    table, sweep_dir = run_sweep(cfg, tmp_path / "sweep")
    first = table[(table.experiment == "cost") & (table.setting == "0.2%")]
    assert list(first["strategy"]) == ["delta", "delta_gamma", "delta_vega", "gvdh", "anaddh"]
    assert len(table) == 3 * 5
    assert (sweep_dir / "results.csv").is_file() and (sweep_dir / "fig_cost.png").is_file()
    assert "### cost: 0.2%" in (sweep_dir / "results.md").read_text()
    # the point folders hold each run; their metrics agree with the table
    point = json.loads((sweep_dir / "points" / "cost" / "0.2_" / "anaddh" / "metrics.json").read_text())
    assert first.set_index("strategy").loc["anaddh", "cvar_95"] == pytest.approx(point["anaddh"]["cvar_95"])
    assert (sweep_dir / "points" / "cost" / "0.2_" / "gvdh" / "config.yaml").read_text().count("cost: 0.002") == 1
    # the repeated base setting was trained once and reported under both experiments
    assert not (sweep_dir / "points" / "again").exists()
    cols = ["strategy", "mean", "cvar_95"]
    again = table[table.experiment == "again"][cols].reset_index(drop=True)
    assert again.equals(table[(table.experiment == "cost") & (table.setting == "base")][cols].reset_index(drop=True))


def test_ray_sweep_matches_serial_run(tmp_path, tiny_hedge):
    """One point through a local Ray (1 CPU: the test is dominated by Ray's start-up) gives the
    same numbers as the serial executor: training is seeded and deterministic."""
    experiments = {"cost": {"0.2%": {"env.cost": 0.002}}}
    ray_cfg = SweepConfig(base=tiny_hedge.run, agents=["anaddh"], experiments=experiments, num_cpus=1)
    table, sweep_dir = run_sweep(ray_cfg, tmp_path / "ray")
    serial, _ = run_sweep(ray_cfg.model_copy(update={"executor": "serial"}), tmp_path / "serial")
    assert list(table["strategy"]) == ["delta", "delta_gamma", "delta_vega", "anaddh"]
    pd.testing.assert_frame_equal(table, serial)
    assert (sweep_dir / "points" / "cost" / "0.2_" / "anaddh" / "agent.pt").is_file()


def test_sweep_names_cannot_escape_the_sweep_folder(tmp_path, tiny_hedge):
    """A setting named ``..`` (and an experiment named ``../x``) is written under ``points/`` as a slug;
    two settings whose slugs collide are refused; a changed config reruns its point."""
    experiments = {"../x": {"..": {"env.market.sigma0": 0.3}}}
    cfg = SweepConfig(base=tiny_hedge.run, agents=["gvdh"], experiments=experiments, executor="serial")
    sweep = tmp_path / "out" / "sweep"
    table, _ = run_sweep(cfg, sweep)
    point = sweep / "points" / "___x" / "__" / "gvdh"
    assert (point / "metrics.json").is_file() and (point / "result.json").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["sweep"]
    assert (sweep / "fig____x.png").is_file()
    stored = json.loads((point / "result.json").read_text())["result"]
    assert table.set_index("strategy").loc["gvdh", "cvar_95"] == pytest.approx(stored["gvdh"]["cvar_95"])
    # the same --out with another cost: the point is trained again, not read back
    changed = cfg.model_copy(update={"experiments": {"../x": {"..": {"env.market.sigma0": 0.5}}}})
    table2, _ = run_sweep(changed, sweep)
    assert table2.set_index("strategy").loc["delta", "mean"] != table.set_index("strategy").loc["delta", "mean"]
    assert "sigma0: 0.5" in (point / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="both write to"):
        run_sweep(cfg.model_copy(update={"experiments": {"e": {"a/b": {"env.cost": 0.001}, "a_b": {}}}}), sweep)
