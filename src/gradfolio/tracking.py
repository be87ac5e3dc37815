"""Experiment tracking: one :class:`Tracker` protocol, an MLflow and a null implementation.

Trainers and runners take any :class:`Tracker` (a protocol: log parameters, metrics and
artifacts, close); :class:`MlflowTracker` logs to MLflow (a local SQLite store by default) and
:class:`NullTracker` turns logging off without an ``if`` at every call site.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


@runtime_checkable
class Tracker(Protocol):
    """What trainers and runners log to (see :class:`MlflowTracker`, :class:`NullTracker`)."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record flat parameters ``{name: value}``."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record scalar metrics at ``step``."""

    def log_artifact(self, path: str | os.PathLike[str]) -> None:
        """Record a file or folder."""

    def close(self) -> None:
        """End the run."""


class NullTracker:
    """A tracker that records nothing (the default of library calls)."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Ignore ``params``."""

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Ignore ``metrics``."""

    def log_artifact(self, path: str | os.PathLike[str]) -> None:
        """Ignore ``path``."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> NullTracker:
        """Use as a context manager; :meth:`close` on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MlflowTracker(NullTracker):
    """Log parameters, metrics and artifacts of one run to MLflow.

    Parameters
    ----------
    experiment
        MLflow experiment name (created if missing).
    run_name
        Name of the run inside the experiment.
    tracking_uri
        MLflow tracking URI; defaults to ``$MLFLOW_TRACKING_URI`` or a local SQLite store
        ``sqlite:///mlflow.db`` in the working directory.
    """

    def __init__(self, experiment: str = "gradfolio", run_name: str | None = None, tracking_uri: str | None = None):
        import mlflow

        self._mlflow = mlflow
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(experiment)
        self._run = mlflow.start_run(run_name=run_name)
        self.run_id: str = self._run.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log flat parameters (values are stringified by MLflow)."""
        self._mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log scalar metrics at ``step``."""
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | os.PathLike[str]) -> None:
        """Copy a file or folder into the run's artifacts."""
        p = Path(path)
        if p.is_dir():
            self._mlflow.log_artifacts(str(p))
        else:
            self._mlflow.log_artifact(str(p))

    def close(self) -> None:
        """End the MLflow run."""
        if self._run is not None:
            self._mlflow.end_run()
            self._run = None


__all__ = ["DEFAULT_TRACKING_URI", "Tracker", "NullTracker", "MlflowTracker"]
