"""Experiment tracking: one :class:`Tracker` protocol, an MLflow and a null implementation.

Trainers and runners take any :class:`Tracker` (a protocol: log parameters, metrics and
artifacts, close); :class:`MlflowTracker` logs to MLflow (a local SQLite store by default) and
:class:`NullTracker` turns logging off without an ``if`` at every call site.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from gradfolio.errors import ConfigError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

#: How a run ends in MLflow.
RunStatus = Literal["FINISHED", "FAILED", "KILLED"]


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


OnError = Literal["raise", "warn"]

#: MLflow back ends a tracking URI may name (``scheme://...``).
_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc", "uc")
_FIX = "pass tracking_uri='sqlite:///mlflow.db' (a local file), an http(s):// MLflow server, or turn tracking off"


def _lock_path(db: Path) -> Path:
    """The inter-process lock file of a SQLite store: ``<file>.lock`` beside the database."""
    return db.with_name(db.name + ".lock")


def _sqlite_path(uri: str) -> Path:
    """The database file of a ``sqlite:///path`` URI, its folder created; ConfigError if it cannot be written."""
    rest = uri[len("sqlite://") :]
    if not rest.startswith("/") or rest in {"/", "/:memory:"}:
        raise ConfigError(
            f"tracking_uri={uri!r} names no database file (MLflow would log into memory and lose the run); "
            "write sqlite:///relative/path.db or sqlite:////absolute/path.db."
        )
    path = Path(rest[1:].split("?", 1)[0]).expanduser()
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"tracking_uri={uri!r}: {str(folder)!r} is a file, not a folder; choose a path in a writable folder."
        )
    if path.is_dir():
        raise ConfigError(f"tracking_uri={uri!r}: {str(path)!r} is a folder; name a database file, e.g. {str(path / 'mlflow.db')!r}.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(_lock_path(path), "a"):  # the lock file beside the database doubles as a write test
            pass
    except OSError as exc:
        raise ConfigError(
            f"tracking_uri={uri!r}: cannot write in the folder {str(folder)!r} ({exc.strerror or exc}); choose a "
            "path in a writable folder."
        ) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"tracking_uri={uri!r}: {str(path)!r} is not writable; choose a writable database file.")
    return path


def _probe(uri: str, timeout: float) -> None:
    """Raise ConfigError unless an HTTP server answers at ``uri`` within ``timeout`` seconds (any status counts)."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            return
    except urllib.error.HTTPError:  # the server answered (even 401/404): it is reachable
        return
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(
            f"tracking_uri={uri!r}: no MLflow server answers within {timeout:g} s ({reason}); start the server "
            "(mlflow server --host <host> --port <port>), pass another tracking_uri, run untracked with "
            "on_error='warn', or turn tracking off."
        ) from None


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock on ``path`` (created if missing); a no-op without ``fcntl``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class MlflowTracker(NullTracker):
    """Log parameters, metrics and artifacts of one run to MLflow.

    Starting checks the tracking URI first and fails fast with one :class:`ConfigError` line (or,
    with ``on_error="warn"``, warns and records nothing): a ``sqlite://`` URI must name a file in a
    writable folder (the folder is created), an ``http(s)://`` server must answer within
    ``timeout`` seconds, and the scheme must be one MLflow knows. A fresh SQLite store is
    initialised under an inter-process lock (a ``<file>.lock`` beside the database), so runs that
    start at the same time on the same new store all succeed. Used as a context manager, the run
    ends ``FINISHED`` on success, ``KILLED`` on ``KeyboardInterrupt`` and ``FAILED`` on any other
    exception.

    Parameters
    ----------
    experiment
        MLflow experiment name (created if missing).
    run_name
        Name of the run inside the experiment.
    tracking_uri
        MLflow tracking URI; defaults to ``$MLFLOW_TRACKING_URI`` or a local SQLite store
        ``sqlite:///mlflow.db`` in the working directory.
    on_error
        ``"raise"`` (default): a tracking URI that cannot be used raises :class:`ConfigError`;
        ``"warn"``: a ``UserWarning`` with the same line, and the run goes untracked
        (:attr:`active` is ``False``, every call is ignored).
    timeout
        Seconds an ``http(s)://`` server has to answer before it counts as unreachable.

    Raises
    ------
    ConfigError
        A tracking URI that names no file, an unwritable folder, an unknown scheme, an unreachable
        server, or any other failure to start the run (with ``on_error="raise"``).
    """

    def __init__(
        self,
        experiment: str = "gradfolio",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        on_error: OnError = "raise",
        timeout: float = 5.0,
    ):
        if on_error not in ("raise", "warn"):
            raise ConfigError(f"on_error={on_error!r} must be 'raise' or 'warn'.")
        self._run: Any = None
        self.run_id: str | None = None
        self.uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        try:
            self._start(experiment, run_name, timeout)
        except ConfigError as exc:
            if on_error == "raise":
                raise
            warnings.warn(f"{exc} Continuing without tracking.", UserWarning, stacklevel=2)

    @property
    def active(self) -> bool:
        """Whether a run is open (``False`` after :meth:`close` or an ``on_error="warn"`` failure)."""
        return self._run is not None

    def _start(self, experiment: str, run_name: str | None, timeout: float) -> None:
        uri = self.uri
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
        lock: Path | None = None
        if scheme == "sqlite":
            db = _sqlite_path(uri)
            lock = _lock_path(db)
        elif scheme in ("http", "https"):
            _probe(uri, timeout)
        elif scheme in ("", "file"):
            raise ConfigError(
                f"tracking_uri={uri!r} is a folder store, which MLflow no longer writes to; {_FIX}."
            )
        elif scheme not in _SCHEMES:
            raise ConfigError(
                f"tracking_uri={uri!r}: unknown scheme {scheme + '://'!r} (known: "
                f"{', '.join(s + '://' for s in _SCHEMES)}); {_FIX}."
            )
        import mlflow

        self._mlflow = mlflow
        try:
            mlflow.set_tracking_uri(uri)
            if lock is not None:
                with _file_lock(lock):  # creating the schema (and the experiment) is not safe to race
                    mlflow.set_experiment(experiment)
            else:
                mlflow.set_experiment(experiment)
            self._run = mlflow.start_run(run_name=run_name)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - any back-end failure becomes one line naming the URI
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ConfigError(f"tracking_uri={uri!r}: MLflow cannot start a run ({first}); {_FIX}.") from exc
        self.run_id = self._run.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log flat parameters (values are stringified by MLflow)."""
        if self.active:
            self._mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log scalar metrics at ``step``."""
        if self.active:
            self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | os.PathLike[str]) -> None:
        """Copy a file or folder into the run's artifacts."""
        if not self.active:
            return
        p = Path(path)
        if p.is_dir():
            self._mlflow.log_artifacts(str(p))
        else:
            self._mlflow.log_artifact(str(p))

    def close(self, status: RunStatus = "FINISHED") -> None:
        """End the MLflow run with ``status`` (``"FINISHED"``, ``"FAILED"`` or ``"KILLED"``)."""
        if self._run is not None:
            self._mlflow.end_run(status=status)
            self._run = None

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        """End the run: ``KILLED`` on ``KeyboardInterrupt``, ``FAILED`` on another exception, else ``FINISHED``."""
        if exc_type is None:
            self.close("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("KILLED")
        else:
            self.close("FAILED")


__all__ = ["DEFAULT_TRACKING_URI", "RunStatus", "OnError", "Tracker", "NullTracker", "MlflowTracker"]
