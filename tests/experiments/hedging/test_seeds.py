"""One agent per training seed: the t interval against scipy, the summary and paired differences by
hand, and a 2-seed x tiny training through ``gradfolio hedge train --seeds``."""

from __future__ import annotations

import math

import torch

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from gradfolio.cli import app
from gradfolio.errors import ConfigError
from gradfolio.experiments.config_io import dump_config
from gradfolio.experiments.hedging.config import EvaluationConfig
from gradfolio.experiments.hedging.seeds import (
    paired_differences,
    seed_summary,
    t_interval,
    train_seeds,
)
from gradfolio.experiments.hedging.train import HedgeTrainingConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_t_interval_matches_scipy():
    values = [3.1, -0.4, 2.2, 7.5, 1.0]
    mean, half = t_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values), rel=1e-14)
    assert half == pytest.approx((high - low) / 2, rel=1e-12)
    assert t_interval([1.0, 3.0], 0.9)[1] == pytest.approx(stats.t.ppf(0.95, 1) * math.sqrt(2) / math.sqrt(2), rel=1e-12)
    with pytest.raises(ConfigError, match="needs >= 2 seeds"):
        t_interval([1.0])


def test_summary_and_paired_differences_by_hand():
    per_seed = pd.DataFrame({
        "seed": [0, 0, 1, 1, 2, 2],
        "strategy": ["delta", "cao", "delta", "cao", "delta", "cao"],
        "cvar_95": [60.0, 30.0, 60.0, 34.0, 60.0, 29.0],
        "mean_std": [-40.0, -20.0, -40.0, -21.0, -40.0, -39.5],
    })
    summary = seed_summary(per_seed)
    t2 = stats.t.ppf(0.975, 2)
    assert summary.loc["cao", "cvar_95"] == pytest.approx(31.0)
    assert summary.loc["cao", "cvar_95_ci"] == pytest.approx(t2 * math.sqrt(7.0) / math.sqrt(3), rel=1e-12)  # var 7
    assert summary.loc["delta", "cvar_95_ci"] == 0.0 and summary.loc["delta", "n_seeds"] == 3
    diffs = paired_differences(per_seed, "cao", ["delta"]).set_index("metric")
    assert diffs.loc["cvar_95", "diff"] == pytest.approx(-29.0) and diffs.loc["cvar_95", "significant"]
    # mean_std diffs 20, 19, 0.5: mean 13.17, sd 10.97 -> half-width 27.3 > 13.2: not significant
    assert diffs.loc["mean_std", "diff"] == pytest.approx(39.5 / 3)
    assert not diffs.loc["mean_std", "significant"]


def test_cli_trains_two_seeds_and_reports_mean_and_interval(tmp_path, tiny_hedge):
    cfg = HedgeTrainingConfig(env=tiny_hedge.env, agent=tiny_hedge.agent,
                              trainer=tiny_hedge.trainer(n_episodes=2, eval_every=0, checkpoint_every=0),
                              evaluation=EvaluationConfig(n_paths=20, n_episodes=2, strategies=["delta", "delta_gamma"]))
    dump_config(cfg, tmp_path / "cfg.yaml")
    out = tmp_path / "seeds"
    res = CliRunner().invoke(app, ["hedge", "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(out),
                                   "--seeds", "3 7", "--serial", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "95% t interval over 2 training seeds" in res.output
    per_seed = pd.read_csv(out / "seeds.csv")
    assert sorted(per_seed["seed"].unique()) == [3, 7] and set(per_seed["strategy"]) == {"delta", "delta_gamma", "anaddh"}
    a3, a7 = (per_seed.query(f"seed == {s} and strategy == 'anaddh'")["cvar_95"].item() for s in (3, 7))
    assert a3 != a7  # the seeds differ
    summary = pd.read_csv(out / "summary.csv", index_col="strategy")
    assert summary.loc["anaddh", "cvar_95"] == pytest.approx((a3 + a7) / 2, rel=1e-12)
    assert summary.loc["anaddh", "cvar_95_ci"] == pytest.approx(stats.t.ppf(0.975, 1) * abs(a3 - a7) / 2, rel=1e-9)
    assert summary.loc["delta", "cvar_95_ci"] == 0.0  # baselines do not depend on the training seed
    for s in (3, 7):
        assert (out / f"seed_{s}" / "agent.pt").is_file() and (out / f"seed_{s}" / "metrics.json").is_file()
    text = (out / "summary.md").read_text()
    assert "95% Student t interval over 2 training seeds" in text and "significant" in text
    res = CliRunner().invoke(app, ["hedge", "train", "--seeds", "0 x", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "--seeds '0 x'" in res.output
    res = CliRunner().invoke(app, ["hedge", "train", "--seeds", "4", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "two or more distinct seeds" in res.output
    res = CliRunner().invoke(app, ["hedge", "train", "--num-cpus", "2", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "go with --seeds" in res.output
    res = CliRunner().invoke(app, ["hedge", "train", "--threads", "0", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "--threads" in res.output and "trainer.threads" in res.output


def _seed_config(tiny_hedge, **trainer):
    trainer = {"n_episodes": 3, "eval_every": 0, "checkpoint_every": 0, **trainer}
    return HedgeTrainingConfig(env=tiny_hedge.env, agent=tiny_hedge.agent, trainer=tiny_hedge.trainer(**trainer),
                               evaluation=EvaluationConfig(n_paths=16, n_episodes=1, strategies=["delta"]))


def test_seeds_through_ray_equal_the_serial_seeds_bit_for_bit(tmp_path, tiny_hedge):
    """One Ray task per seed (1 thread each) gives every seed's test row exactly as the serial run
    in this process (1 thread) does; a finished seed is read back, not retrained."""
    cfg = _seed_config(tiny_hedge)
    serial, serial_summary, _ = train_seeds(cfg, [5, 2], tmp_path / "serial", executor="serial")
    ray_rows, ray_summary, root = train_seeds(cfg, [5, 2], tmp_path / "ray", executor="ray", num_cpus=1)
    pd.testing.assert_frame_equal(ray_rows, serial, check_exact=True)
    pd.testing.assert_frame_equal(ray_summary, serial_summary, check_exact=True)
    assert serial.query("seed == 5 and strategy == 'anaddh'")["cvar_95"].item() != \
        serial.query("seed == 2 and strategy == 'anaddh'")["cvar_95"].item()
    assert (root / "seed_2" / "result.json").is_file() and (root / "seed_5" / "agent.pt").is_file()
    stamp = (root / "seed_2" / "agent.pt").stat().st_mtime_ns
    again, _, _ = train_seeds(cfg, [5, 2], root, resume=True, executor="ray", num_cpus=1)
    pd.testing.assert_frame_equal(again, ray_rows, check_exact=True)
    assert (root / "seed_2" / "agent.pt").stat().st_mtime_ns == stamp  # read back


def test_seed_folders_with_checkpoints_need_resume_which_continues_them(tmp_path, tiny_hedge):
    cfg = _seed_config(tiny_hedge, checkpoint_every=1000)  # a checkpoint at the end
    train_seeds(cfg, [1, 4], tmp_path, executor="serial")
    with pytest.raises(ConfigError, match=r"seed_1.checkpoint.pt exists; pass --resume"):
        train_seeds(cfg, [1, 4], tmp_path, executor="serial")
    before = pd.read_csv(tmp_path / "seed_4" / "history.csv")
    longer = cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"n_episodes": 5})})
    train_seeds(longer, [1, 4, 9], tmp_path, resume=True, executor="serial")  # 1, 4 continue; 9 starts
    for s in (1, 4, 9):
        assert len(pd.read_csv(tmp_path / f"seed_{s}" / "history.csv")) == 5
    after = pd.read_csv(tmp_path / "seed_4" / "history.csv")
    pd.testing.assert_frame_equal(after.iloc[:3], before)  # continued from its checkpoint, not retrained
    assert sorted(pd.read_csv(tmp_path / "seeds.csv")["seed"].unique()) == [1, 4, 9]


def test_training_runs_on_trainer_threads_and_restores_the_count(tmp_path, tiny_hedge):
    """``trainer.threads`` holds while the agent trains (seen from the progress callback); torch's
    count is back afterwards; ``None`` leaves it alone."""
    from gradfolio.experiments.hedging.train import train_agent

    seen: list[int] = []
    for threads, out in ((2, "two"), (None, "none")):
        cfg = _seed_config(tiny_hedge, threads=threads)
        train_agent(cfg, tmp_path / out, progress=lambda *a, **k: seen.append(torch.get_num_threads()))
        assert torch.get_num_threads() == 1  # the one_torch_thread fixture's count, restored
    assert set(seen[:3]) == {2} and set(seen[3:]) == {1}
    assert len(seen) == 6
