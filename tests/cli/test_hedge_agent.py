"""`gradfolio hedge train | evaluate | sweep`: train, evaluate and resume, one line on a bad option, a
sweep on one experiment (and over seeds), MLflow tracking of an evaluation."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from gradfolio.cli import app
from gradfolio.experiments.config_io import dump_config, load_config
from gradfolio.experiments.hedging.config import EvaluationConfig
from gradfolio.experiments.hedging.train import HedgeTrainingConfig, load_agent, train_agent
from gradfolio.experiments.hedging.sweep import SweepConfig, apply_overrides

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cli_train_evaluate_and_resume(tmp_path, tiny_hedge):
    cfg = HedgeTrainingConfig(env=tiny_hedge.env, agent=tiny_hedge.agent,
                              trainer=tiny_hedge.trainer(n_episodes=3),
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
        (["sweep", "--seeds", "0 x", "--serial"],
         "--seeds '0 x': pass integers separated by spaces or commas, e.g. --seeds '0 1 2'."),
        (["sweep", "--seeds", "1,1", "--serial"],
         "option --seeds: field 'seeds': Value error, --seeds 1 1: pass two or more distinct seeds >= 0"),
    ],
)
def test_cli_bad_options_give_one_line_naming_the_option(tmp_path, args, message, tiny_hedge):
    config = tmp_path / "cfg.yaml"
    sweep = SweepConfig(base=tiny_hedge.run, agents=["anaddh"])
    dump_config(tiny_hedge.run if args[0] == "train" else sweep, config)
    res = CliRunner().invoke(app, ["hedge", *args, "--config", str(config), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_cli_sweep_on_one_experiment(tmp_path, tiny_hedge):
    """`hedge sweep --only cost --episodes 2 --serial`: one point trained for 2 episodes (the
    config says 3), the other experiment skipped, the tables, figure and point folder written."""
    base = apply_overrides(tiny_hedge.run, {"trainer.n_episodes": 3}, "test")
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


def test_cli_sweep_with_seeds_prints_mean_and_interval(tmp_path, tiny_hedge, monkeypatch):
    """`hedge sweep --seeds "0 1"`: one point trained per seed, the printed table shows
    ``mean ± half-width`` cells, the written config keeps the seeds."""
    from gradfolio.cli.app import console

    monkeypatch.setattr(console, "_width", 300)  # a wide console whatever the test run's terminal
    experiments = {"cost": {"0.2%": {"env.cost": 0.002}}}
    dump_config(SweepConfig(base=tiny_hedge.run, agents=["gvdh"], experiments=experiments), tmp_path / "sweep.yaml")
    out = tmp_path / "sweep"
    res = CliRunner().invoke(app, ["hedge", "sweep", "--config", str(tmp_path / "sweep.yaml"), "--out", str(out),
                                   "--seeds", "0 1", "--serial"], env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    assert load_config(SweepConfig, out / "sweep.yaml").seeds == [0, 1]
    table = pd.read_csv(out / "results.csv").set_index("strategy")
    assert len(pd.read_csv(out / "results_seeds.csv")) == 4 * 2
    row = table.loc["gvdh"]
    assert "95% t interval over 2 training seeds" in res.output
    cell = f"{row['cvar_95']:.3f} ± {row['cvar_95_ci']:.3f}"
    assert cell in (out / "results.md").read_text() and cell in res.output
    assert {p.parent.name for p in (out / "points").rglob("agent.pt")} == {"seed_0", "seed_1"}


def test_cli_evaluate_track_logs_to_mlflow(tmp_path, monkeypatch, tiny_hedge):
    import mlflow

    monkeypatch.chdir(tmp_path)  # MLflow's artifact store (./mlruns) goes to the test folder
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    train_agent(tiny_hedge.run, tmp_path / "run")
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
