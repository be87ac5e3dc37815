"""MLflow tracking into a local SQLite store."""

from __future__ import annotations

import http.server
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest

import gradfolio
from gradfolio import ConfigError
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


# --- reliability: concurrent stores, run status, bad or unreachable URIs -----------------------

_RACER = """
import sys, time
from pathlib import Path
from gradfolio.tracking import MlflowTracker
import mlflow  # imported before the start line, so that every process starts the store at once
folder, uri, name = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
(folder / f"ready-{name}").touch()
while not (folder / "go").exists():
    time.sleep(0.002)
with MlflowTracker("race", run_name=name, tracking_uri=uri) as tracker:
    tracker.log_metrics({"x": 1.0}, step=0)
print(tracker.run_id)
"""


def test_concurrent_runs_on_a_fresh_sqlite_store_all_succeed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"  # the folder does not exist yet either
    env = {**os.environ, "PYTHONPATH": str(Path(gradfolio.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    names = ["r0", "r1", "r2"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(tmp_path), uri, name],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for name in names
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{n}").exists() for n in names):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a racer died before the start"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    run_ids = [out.strip().splitlines()[-1] for out, _ in outputs]
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    runs = [client.get_run(r) for r in run_ids]
    assert sorted(r.info.run_name for r in runs) == names
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.info.experiment_id for r in runs}) == 1  # one experiment, not one per process
    assert (tmp_path / "store" / "mlflow.db.lock").is_file()


@pytest.mark.parametrize(
    ("error", "status"), [(KeyboardInterrupt, "KILLED"), (ValueError, "FAILED"), (RuntimeError, "FAILED")]
)
def test_interrupted_and_failed_runs_are_not_recorded_finished(
    tmp_path: Path, error: type[BaseException], status: str
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(error):
        with MlflowTracker(experiment="status", run_name="r", tracking_uri=uri) as tracker:
            tracker.log_metrics({"loss": 2.5}, step=3)
            raise error("stop")
    run = mlflow.tracking.MlflowClient(tracking_uri=uri).get_run(tracker.run_id)
    assert run.info.status == status
    assert run.data.metrics == {"loss": 2.5}
    assert not tracker.active
    tracker.close()  # a second close is harmless


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_fails_fast_with_one_line(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        MlflowTracker(experiment="x", tracking_uri=uri, timeout=2.0)
    assert time.monotonic() - start < 5.0
    assert str(info.value) == (
        f"tracking_uri='{uri}': no MLflow server answers within 2 s ([Errno 111] Connection refused); start the "
        "server (mlflow server --host <host> --port <port>), pass another tracking_uri, run untracked with "
        "on_error='warn', or turn tracking off."
    )


def test_unreachable_server_with_on_error_warn_runs_untracked(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    with pytest.warns(UserWarning, match=r"no MLflow server answers within 5 s .* Continuing without tracking\.$"):
        tracker = MlflowTracker(experiment="x", tracking_uri=uri, on_error="warn")
    with tracker:
        assert not tracker.active and tracker.run_id is None
        tracker.log_params({"a": 1})
        tracker.log_metrics({"b": 2.0}, step=1)
        tracker.log_artifact(tmp_path)


def test_server_that_is_not_mlflow_is_one_config_error() -> None:
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self.send_error(404)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        start = time.monotonic()
        with pytest.raises(ConfigError, match=rf"^tracking_uri='{re.escape(uri)}': MLflow cannot start a run \("):
            MlflowTracker(experiment="x", tracking_uri=uri)
        assert time.monotonic() - start < 30.0
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("sqlite://", "tracking_uri='sqlite://' names no database file (MLflow would log into memory and lose the run); "
         "write sqlite:///relative/path.db or sqlite:////absolute/path.db."),
        ("sqlite:///:memory:", "tracking_uri='sqlite:///:memory:' names no database file"),
        ("notascheme://x", "tracking_uri='notascheme://x': unknown scheme 'notascheme://' (known: sqlite://, http://, "
         "https://, postgresql://, mysql://, mssql://, databricks://, databricks-uc://, uc://); pass "
         "tracking_uri='sqlite:///mlflow.db' (a local file), an http(s):// MLflow server, or turn tracking off."),
        ("{tmp}/runs", "tracking_uri='{tmp}/runs' is a folder store, which MLflow no longer writes to; pass "
         "tracking_uri='sqlite:///mlflow.db'"),
        ("sqlite:///{tmp}/afile/mlflow.db", "tracking_uri='sqlite:///{tmp}/afile/mlflow.db': '{tmp}/afile' is a file, "
         "not a folder; choose a path in a writable folder."),
        ("sqlite:///{tmp}", "tracking_uri='sqlite:///{tmp}': '{tmp}' is a folder; name a database file, e.g. "
         "'{tmp}/mlflow.db'."),
    ],
)
def test_bad_tracking_uris_are_one_config_error(tmp_path: Path, uri: str, message: str) -> None:
    (tmp_path / "afile").write_text("not a folder")
    uri, message = uri.format(tmp=tmp_path), message.format(tmp=tmp_path)
    with pytest.raises(ConfigError) as info:
        MlflowTracker(experiment="x", tracking_uri=uri)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    with pytest.warns(UserWarning, match="Continuing without tracking"):
        assert not MlflowTracker(experiment="x", tracking_uri=uri, on_error="warn").active


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write into any folder")
def test_unwritable_folder_is_one_config_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match=r"cannot write in the folder .*locked' \(Permission denied\); choose"):
            MlflowTracker(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    finally:
        folder.chmod(0o700)


def test_on_error_must_be_raise_or_warn() -> None:
    with pytest.raises(ConfigError, match=r"on_error='ignore' must be 'raise' or 'warn'"):
        MlflowTracker(on_error="ignore")  # type: ignore[arg-type]
