"""Test helpers shared across the test folders (given as fixtures: test modules cannot import
conftest under ``--import-mode=importlib``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradfolio.tracking import NullTracker


class RecordingTracker(NullTracker):
    """A tracker that keeps what it is told, and can stop a run like a kill: it raises
    ``KeyboardInterrupt`` when the metrics of step ``kill_at`` are logged."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at = kill_at
        self.params: dict = {}
        self.metrics: dict = {}
        self.steps: list = []
        self.artifacts: list[Path] = []

    def log_params(self, params):
        self.params.update(params)

    def log_metrics(self, metrics, step=None):
        self.steps.append(step)
        self.metrics.update(metrics)
        if self.kill_at is not None and step == self.kill_at:
            raise KeyboardInterrupt

    def log_artifact(self, path):
        self.artifacts.append(Path(path))


@pytest.fixture
def recording_tracker() -> type[RecordingTracker]:
    """The :class:`RecordingTracker` class (``recording_tracker(kill_at=2)`` builds one)."""
    return RecordingTracker
