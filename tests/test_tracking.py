"""MLflow tracking into a local SQLite store."""

from __future__ import annotations

from pathlib import Path

import mlflow

from gradfolio.tracking import MlflowTracker, NullTracker, Tracker


def test_tracker_logs_to_sqlite(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifact = tmp_path / "note.txt"
    artifact.write_text("hello")
    with MlflowTracker(experiment="test-exp", run_name="r1", tracking_uri=uri) as tracker:
        tracker.log_params({"lr": 0.01, "loss": "sharpe"})
        tracker.log_metrics({"val_loss": 1.5}, step=0)
        tracker.log_metrics({"val_loss": 1.25}, step=1)
        tracker.log_artifact(artifact)
        run_id = tracker.run_id
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.data.params == {"lr": "0.01", "loss": "sharpe"}
    history = client.get_metric_history(run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.5), (1, 1.25)]
    assert run.info.status == "FINISHED"


def test_null_tracker_accepts_everything() -> None:
    with NullTracker() as t:
        t.log_params({"a": 1})
        t.log_metrics({"b": 2.0}, step=3)
        t.log_artifact("missing-is-fine")


def test_both_trackers_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(NullTracker(), Tracker)
    with MlflowTracker(experiment="proto", run_name="p", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}") as t:
        assert isinstance(t, Tracker)
    assert not isinstance(object(), Tracker)
