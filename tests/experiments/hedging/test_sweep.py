"""Sweeps of RL hedge trainings: overrides validated, every distinct point trained once, a two-point
Ray sweep equal to the serial run; with seeds, every distinct point trained once per seed and
summarised as mean and 95% t interval."""

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


def test_sweep_with_seeds_reports_mean_and_t_interval(tmp_path, tiny_hedge):
    """Two training seeds: every distinct point trained once per seed (the repeated base setting
    too, once per seed), the summary is the mean and 95% t interval of the per-seed rows (baselines:
    half-width 0), seed 0 is the same training as a sweep without seeds at base seed 0, and a rerun
    reads every job back."""
    from scipy import stats

    experiments = {"cost": {"0.2%": {"env.cost": 0.002}, "base": {}}, "again": {"base": {}}}
    base = apply_overrides(tiny_hedge.run, {"trainer.seed": 7}, "test")  # replaced by each seed
    cfg = SweepConfig(base=base, agents=["anaddh"], experiments=experiments, executor="serial", seeds=[0, 1])
    sweep = tmp_path / "sweep"
    table, sweep_dir = run_sweep(cfg, sweep)
    # 2 distinct points x 2 seeds, each in its seed folder; "again: base" is read from "cost: base"
    trained = sorted(p.relative_to(sweep / "points").parent.as_posix() for p in (sweep / "points").rglob("agent.pt"))
    assert trained == ["cost/0.2_/anaddh/seed_0", "cost/0.2_/anaddh/seed_1", "cost/base/anaddh/seed_0",
                       "cost/base/anaddh/seed_1"]
    per_seed = pd.read_csv(sweep_dir / "results_seeds.csv")
    assert list(per_seed.columns[:4]) == ["experiment", "setting", "strategy", "seed"]
    assert len(per_seed) == 3 * 4 * 2 and list(per_seed["seed"][:4]) == [0, 1, 0, 1]
    assert list(table.columns[:5]) == ["experiment", "setting", "strategy", "mean", "mean_ci"]
    assert list(table.columns[-1:]) == ["n_seeds"] and (table["n_seeds"] == 2).all() and len(table) == 3 * 4
    pd.testing.assert_frame_equal(pd.read_csv(sweep_dir / "results.csv"), table, check_dtype=False)
    for (exp, setting), _ in table.groupby(["experiment", "setting"]):
        rows = per_seed[(per_seed.experiment == exp) & (per_seed.setting == setting)].set_index(["strategy", "seed"])
        summary = table[(table.experiment == exp) & (table.setting == setting)].set_index("strategy")
        for metric in ("mean_std", "cvar_95", "cost"):
            values = rows.loc["anaddh", metric].to_numpy()
            lo, hi = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
            assert summary.loc["anaddh", metric] == pytest.approx(values.mean(), rel=1e-9)
            assert summary.loc["anaddh", f"{metric}_ci"] == pytest.approx((hi - lo) / 2, rel=1e-9)
            assert summary.loc["anaddh", f"{metric}_ci"] > 0  # the seeds train different agents
            assert summary.loc["delta_gamma", f"{metric}_ci"] == 0.0
            assert (rows.loc["delta_gamma", metric] == summary.loc["delta_gamma", metric]).all()
    again = table[table.experiment == "again"].drop(columns="experiment").reset_index(drop=True)
    pd.testing.assert_frame_equal(again, table[(table.experiment == "cost") & (table.setting == "base")]
                                  .drop(columns="experiment").reset_index(drop=True))
    text = (sweep_dir / "results.md").read_text()
    assert "95% Student t interval over 2 training seeds (0, 1)" in text and "### again: base" in text
    cvar = table.set_index(["experiment", "setting", "strategy"]).loc[("cost", "0.2%", "anaddh")]
    assert f"{cvar['cvar_95']:.3f} ± {cvar['cvar_95_ci']:.3f}" in text
    assert (sweep_dir / "fig_cost.png").is_file() and (sweep_dir / "fig_again.png").is_file()
    # seed 0 is the training of a sweep without seeds whose base seed is 0
    single = cfg.model_copy(update={"seeds": None, "experiments": {"cost": {"0.2%": {"env.cost": 0.002}}},
                                    "base": apply_overrides(base, {"trainer.seed": 0}, "test")})
    plain, plain_dir = run_sweep(single, tmp_path / "plain")
    assert (plain_dir / "points" / "cost" / "0.2_" / "anaddh" / "agent.pt").is_file()
    assert not (plain_dir / "results_seeds.csv").exists()
    seed0 = per_seed[(per_seed.setting == "0.2%") & (per_seed.seed == 0)].drop(columns="seed").reset_index(drop=True)
    pd.testing.assert_frame_equal(seed0, plain, check_exact=False, rtol=1e-12)
    # a rerun trains nothing: every job is read back
    stamps = {p: p.stat().st_mtime_ns for p in (sweep / "points").rglob("agent.pt")}
    again_table, _ = run_sweep(cfg, sweep)
    assert {p: p.stat().st_mtime_ns for p in (sweep / "points").rglob("agent.pt")} == stamps
    pd.testing.assert_frame_equal(again_table, table)


def test_sweep_seeds_are_validated(tiny_hedge):
    for seeds in ([0], [1, 1], [0, -1]):
        with pytest.raises(ValueError, match="two or more distinct seeds"):
            SweepConfig(base=tiny_hedge.run, seeds=seeds)
    assert SweepConfig(base=tiny_hedge.run).seeds is None
