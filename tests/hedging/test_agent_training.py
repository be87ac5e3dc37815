"""Training loop on the real environment: learning signal, checkpoint/resume bitwise identical to
an uninterrupted run, config mismatch refused, ANA validated and saved at its iterates; the
train/evaluate/sweep CLI (bad options, MLflow tracking); a two-point Ray sweep."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from gradfolio.cli import app
from gradfolio.errors import ConfigError
from gradfolio.experiments.config_io import dump_config, load_config
from gradfolio.experiments.hedging.config import EvaluationConfig
from gradfolio.experiments.hedging.train import HedgeTrainingConfig, load_agent, train_agent
from gradfolio.experiments.hedging.sweep import SweepConfig, apply_overrides, grid_points, run_sweep
from gradfolio.hedging.agent import AgentConfig
from gradfolio.hedging.config import EnvConfig
from gradfolio.hedging.training import Trainer, TrainerConfig, validation_score


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ENV = EnvConfig(n_days=5, time_to_go=True)
AGENT = AgentConfig(hidden=(8,), n_quantiles=4, optimizer="ana")


def _trainer_config(**kw):
    base = dict(n_paths=8, n_episodes=6, warmup_episodes=1, batch_size=16, eval_every=2, val_paths=8,
                checkpoint_every=1, buffer_capacity=64, trajectory_length=2)
    return TrainerConfig(**{**base, **kw})


def _same_state(a: Trainer, b: Trainer) -> None:
    sa, sb = a.agent.full_state_dict(), b.agent.full_state_dict()
    for key in sa["modules"]:
        assert torch.equal(sa["modules"][key], sb["modules"][key]), key
    for opt in ("actor_opt", "critic_opt"):
        for pid, st in sa[opt]["state"].items():
            for name, value in st.items():
                other = sb[opt]["state"][pid][name]
                assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other
    assert a.history == b.history
    assert a.updates == b.updates
    assert torch.equal(a.buffer.state, b.buffer.state)


@pytest.mark.parametrize("optimizer", ["ana", "adam"])
def test_resume_after_kill_is_bitwise_identical(tmp_path, optimizer, recording_tracker):
    agent_cfg = AGENT.model_copy(update={"optimizer": optimizer})
    # buffer smaller than the transitions collected: the wrap-around is checkpointed too
    full = Trainer(ENV, agent_cfg, _trainer_config(), tmp_path / "full")
    full.train()

    killed = Trainer(ENV, agent_cfg, _trainer_config(), tmp_path / "run", tracker=recording_tracker(kill_at=4))
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    assert killed.episode == 4  # episode 4 ran but its checkpoint was never written

    resumed = Trainer(ENV, agent_cfg, _trainer_config(), tmp_path / "run")
    resumed.load()
    assert resumed.episode == 3
    resumed.train()
    _same_state(full, resumed)
    assert resumed.episode == 6 and resumed.updates == full.updates > 0


def test_resume_refuses_other_settings(tmp_path):
    Trainer(ENV, AGENT, _trainer_config(n_episodes=2), tmp_path).train()
    other = Trainer(ENV, AGENT.model_copy(update={"n_quantiles": 8}), _trainer_config(n_episodes=2), tmp_path)
    with pytest.raises(ConfigError, match="different settings"):
        other.load()
    with pytest.raises(ConfigError, match="no checkpoint"):
        Trainer(ENV, AGENT, _trainer_config(), tmp_path / "empty").load()


def test_trainer_collects_every_path_and_validates():
    tr = Trainer(ENV, AGENT, _trainer_config(n_episodes=4, buffer_capacity=1000))
    tr.train()
    assert len(tr.buffer) == 4 * 8 * 5  # episodes x paths x days
    # 3 training episodes x 5 days = 15 days; update phases every 2 days (7 of them), 2 updates per day
    assert tr.updates == 7 * 2 * 2 and tr.pending_days == 1
    assert "val_cvar_95" in tr.history[1] and "val_cvar_95" in tr.history[3]
    assert tr.best is not None
    # the scaler was fitted on the warm-up states: standardised features have mean ~0 there
    feats = tr.agent.features(tr.buffer.state[: 8 * 5])
    assert feats.mean(dim=0).abs().max() < 1e-5


def test_ana_agent_is_validated_and_saved_at_its_iterates(tmp_path):
    """Without restart ANA's look-ahead point y_r differs from the iterate theta^r after every
    step. One validation (episode 4, so it is also the keep_best snapshot): its score is that of
    the actor at theta^r (a manual swap), not at y_r; agent.pt holds theta^r for both networks."""
    agent_cfg = AGENT.model_copy(update={"ana_restart": "none"})
    cfg = HedgeTrainingConfig(env=ENV, agent=agent_cfg, trainer=_trainer_config(n_episodes=4, eval_every=4))
    train_agent(cfg, tmp_path / "run")
    # the last checkpoint holds the run as training left it: y_r in the networks
    tr = Trainer(ENV, agent_cfg, cfg.trainer, tmp_path / "run")
    tr.load()
    (row,) = [r for r in tr.history if "val_score" in r]
    y_critic = [p.detach().clone() for p in tr.agent.critic.parameters()]
    score_y = validation_score(tr.agent, tr.val_env)[0]
    with torch.no_grad():
        for p, theta in zip(tr.agent.actor.parameters(), tr.agent.actor_opt.iterates(), strict=True):
            p.copy_(theta)
    assert validation_score(tr.agent, tr.val_env)[0] == row["val_score"] != score_y
    assert all(torch.equal(tr.best[1][k], v) for k, v in tr.agent.actor.state_dict().items())

    saved, _ = load_agent(tmp_path / "run")
    for net, opt in ((saved.actor, saved.actor_opt), (saved.critic, saved.critic_opt)):
        assert all(torch.equal(p, theta) for p, theta in zip(net.parameters(), opt.iterates(), strict=True))
    assert not any(torch.equal(p, y) for p, y in zip(saved.critic.parameters(), y_critic, strict=True))


def test_agent_learns_to_hedge_better_than_no_option_trades():
    """On the default 30-day market (short runs, 64 paths), training lowers the validation
    CVaR95 below that of delta hedging (which trades no option)."""
    from gradfolio.hedging.evaluation import pnl_metrics
    from gradfolio.hedging.strategies import GreekHedge
    from gradfolio.hedging.training import VAL_SEED

    env_cfg = EnvConfig(time_to_go=True)
    cfg = TrainerConfig(n_paths=64, n_episodes=12, warmup_episodes=2, eval_every=2, val_paths=1000,
                        updates_per_step=1, batch_size=128, checkpoint_every=0)
    tr = Trainer(env_cfg, AgentConfig(optimizer="ana"), cfg)
    tr.train()
    delta = pnl_metrics(tr.val_env.run_episode(GreekHedge(tr.val_env, "delta"), VAL_SEED).total_pnl)
    best = min(row["val_cvar_95"] for row in tr.history if "val_cvar_95" in row)
    assert best < 0.8 * delta["cvar_95"], (best, delta["cvar_95"])


def test_cli_train_evaluate_and_resume(tmp_path):
    cfg = HedgeTrainingConfig(env=ENV, agent=AGENT, trainer=_trainer_config(n_episodes=3),
                              evaluation=EvaluationConfig(n_paths=20))
    dump_config(cfg, tmp_path / "cfg.yaml")
    runner = CliRunner()
    out = tmp_path / "run"
    res = runner.invoke(app, ["hedge", "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"delta", "delta_gamma", "delta_vega", "anaddh"}
    assert len(pd.read_csv(out / "history.csv")) == 3
    # a second train into the same folder must be explicit
    res = runner.invoke(app, ["hedge", "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(out)])
    assert res.exit_code == 2 and "--resume" in res.output
    res = runner.invoke(app, ["hedge", "train", "--config", str(tmp_path / "cfg.yaml"), "--out", str(out),
                              "--resume", "--episodes", "4", "--no-progress", "--no-evaluate"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(out / "history.csv")) == 4
    agent, loaded = load_agent(out)
    assert loaded == cfg.model_copy(update={"trainer": cfg.trainer.model_copy(update={"n_episodes": 4})})
    res = runner.invoke(app, ["hedge", "evaluate", "--run", str(out), "--paths", "30", "--out", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ev" / "report.html").is_file()
    res = runner.invoke(app, ["hedge", "evaluate", "--run", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "no trained agent" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--optimizer", "sgd"],
         "option --optimizer: field 'agent.optimizer': Input should be 'adam' or 'ana' (got 'sgd')"),
        (["train", "--objective", "median"],
         "option --objective: field 'agent.objective': Input should be 'mean', 'mean_std', 'var' or 'cvar'"),
        (["train", "--episodes", "0"],
         "option --episodes: field 'trainer.n_episodes': Input should be greater than or equal to 1 (got 0)"),
        (["sweep", "--num-cpus", "0", "--serial"],
         "option --num-cpus: field 'num_cpus': Input should be greater than or equal to 1 (got 0)"),
    ],
)
def test_cli_bad_options_give_one_line_naming_the_option(tmp_path, args, message):
    config = tmp_path / "cfg.yaml"
    dump_config(SWEEP_BASE if args[0] == "train" else SweepConfig(base=SWEEP_BASE, agents=["anaddh"]), config)
    res = CliRunner().invoke(app, ["hedge", *args, "--config", str(config), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


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


SWEEP_BASE = HedgeTrainingConfig(env=ENV, agent=AGENT, trainer=_trainer_config(n_episodes=2, eval_every=0),
                                 evaluation=EvaluationConfig(n_paths=20))


def test_sweep_trains_each_distinct_point_once(tmp_path):
    experiments = {"cost": {"0.2%": {"env.cost": 0.002}, "base": {}}, "again": {"base": {}}}
    cfg = SweepConfig(base=SWEEP_BASE, agents=["gvdh", "anaddh"], experiments=experiments, executor="serial")
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


def test_cli_sweep_on_one_experiment(tmp_path):
    """`hedge sweep --only cost --episodes 2 --serial`: one point trained for 2 episodes (the
    config says 3), the other experiment skipped, the tables, figure and point folder written."""
    base = apply_overrides(SWEEP_BASE, {"trainer.n_episodes": 3}, "test")
    experiments = {"cost": {"0.2%": {"env.cost": 0.002}}, "maturity": {"120d": {"env.hedge_maturity_days": 120}}}
    dump_config(SweepConfig(base=base, agents=["anaddh"], experiments=experiments), tmp_path / "sweep.yaml")
    out = tmp_path / "sweep"
    res = CliRunner().invoke(app, ["hedge", "sweep", "--config", str(tmp_path / "sweep.yaml"), "--out", str(out),
                                   "--only", "cost", "--episodes", "2", "--serial"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "results.csv")
    assert list(table["strategy"]) == ["delta", "delta_gamma", "delta_vega", "anaddh"]
    assert set(table["experiment"]) == {"cost"} and set(table["setting"]) == {"0.2%"}
    assert "### cost: 0.2%" in (out / "results.md").read_text() and (out / "fig_cost.png").is_file()
    assert not (out / "fig_maturity.png").exists() and not (out / "points" / "maturity").exists()
    written = load_config(SweepConfig, out / "sweep.yaml")
    assert written.executor == "serial" and list(written.experiments) == ["cost"]
    assert written.base.trainer.n_episodes == 2
    point = out / "points" / "cost" / "0.2_" / "anaddh"
    assert {"config.yaml", "checkpoint.pt", "agent.pt", "history.csv", "metrics.json", "report.html"} <= {
        f.name for f in point.iterdir()}
    assert len(pd.read_csv(point / "history.csv")) == 2
    metrics = json.loads((point / "metrics.json").read_text())
    assert table.set_index("strategy").loc["anaddh", "cvar_95"] == pytest.approx(metrics["anaddh"]["cvar_95"])


def test_cli_evaluate_track_logs_to_mlflow(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)  # MLflow's artifact store (./mlruns) goes to the test folder
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    train_agent(SWEEP_BASE, tmp_path / "run")
    runner = CliRunner()
    res = runner.invoke(app, ["hedge", "evaluate", "--run", str(tmp_path / "run"), "--paths", "30",
                              "--out", str(tmp_path / "ev"), "--track"])
    assert res.exit_code == 0, res.output
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("gradfolio-hedge")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "evaluate-anaddh"
    assert run.data.params["run"] == str(tmp_path / "run") and run.data.params["evaluation.n_paths"] == "30"
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert run.data.metrics["test.anaddh.cvar_95"] == pytest.approx(metrics["anaddh"]["cvar_95"])
    assert "report.html" in {a.path for a in client.list_artifacts(run.info.run_id)}
    res = runner.invoke(app, ["hedge", "evaluate", "--run", str(tmp_path / "run"), "--paths", "30",
                              "--out", str(tmp_path / "ev2"), "--no-track"])
    assert res.exit_code == 0, res.output
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_training_and_test_metrics_go_to_mlflow(tmp_path, monkeypatch):
    import mlflow

    from gradfolio.experiments.hedging.train import evaluate_agent
    from gradfolio.tracking import Tracker

    monkeypatch.chdir(tmp_path)  # MLflow's artifact store (./mlruns) goes to the test folder
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = HedgeTrainingConfig(env=ENV, agent=AGENT, trainer=_trainer_config(n_episodes=4),
                              evaluation=EvaluationConfig(n_paths=20))
    with Tracker("test-hedge", run_name="anaddh", tracking_uri=uri) as tracker:
        agent, run_dir = train_agent(cfg, tmp_path / "run", tracker=tracker)
        table, _ = evaluate_agent(agent, cfg, run_dir, tracker)
        run_id = tracker.run_id
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.params["agent_name"] == "anaddh" and run.data.params["agent.optimizer"] == "ana"
    assert [m.step for m in client.get_metric_history(run_id, "critic_loss")] == [2, 3, 4]
    assert [m.step for m in client.get_metric_history(run_id, "val_cvar_95")] == [2, 4]
    assert run.data.metrics["test.anaddh.cvar_95"] == pytest.approx(table.loc["anaddh", "cvar_95"])


def test_ray_sweep_matches_serial_run(tmp_path):
    """One point through a local Ray (1 CPU: the test is dominated by Ray's start-up) gives the
    same numbers as the serial executor: training is seeded and deterministic."""
    experiments = {"cost": {"0.2%": {"env.cost": 0.002}}}
    ray_cfg = SweepConfig(base=SWEEP_BASE, agents=["anaddh"], experiments=experiments, num_cpus=1)
    table, sweep_dir = run_sweep(ray_cfg, tmp_path / "ray")
    serial, _ = run_sweep(ray_cfg.model_copy(update={"executor": "serial"}), tmp_path / "serial")
    assert list(table["strategy"]) == ["delta", "delta_gamma", "delta_vega", "anaddh"]
    pd.testing.assert_frame_equal(table, serial)
    assert (sweep_dir / "points" / "cost" / "0.2_" / "anaddh" / "agent.pt").is_file()
