"""train_agent / evaluate_agent: training and test metrics logged to MLflow."""

from __future__ import annotations

import pytest

from gradfolio.experiments.hedging.config import EvaluationConfig
from gradfolio.experiments.hedging.train import HedgeTrainingConfig, train_agent

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_training_and_test_metrics_go_to_mlflow(tmp_path, monkeypatch, tiny_hedge):
    import mlflow

    from gradfolio.experiments.hedging.train import evaluate_agent
    from gradfolio.tracking import MlflowTracker

    monkeypatch.chdir(tmp_path)  # MLflow's artifact store (./mlruns) goes to the test folder
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = HedgeTrainingConfig(env=tiny_hedge.env, agent=tiny_hedge.agent,
                              trainer=tiny_hedge.trainer(n_episodes=4),
                              evaluation=EvaluationConfig(n_paths=20))
    with MlflowTracker("test-hedge", run_name="anaddh", tracking_uri=uri) as tracker:
        agent, run_dir = train_agent(cfg, tmp_path / "run", tracker=tracker)
        table, _ = evaluate_agent(agent, cfg, run_dir, tracker)
        run_id = tracker.run_id
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.params["agent_name"] == "anaddh" and run.data.params["agent.optimizer"] == "ana"
    assert [m.step for m in client.get_metric_history(run_id, "critic_loss")] == [2, 3, 4]
    assert [m.step for m in client.get_metric_history(run_id, "val_cvar_95")] == [2, 4]
    assert run.data.metrics["test.anaddh.cvar_95"] == pytest.approx(table.loc["anaddh", "cvar_95"])
