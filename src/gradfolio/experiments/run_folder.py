"""A run folder as one transaction: gradfolio writes only into its own folders, one writer at a time.

Every command that writes a run folder (``gradfolio backtest``, ``demo``, ``hedge baselines``,
``hedge train``/``evaluate``) opens it through :class:`RunFolder`:

* **Ownership.** gradfolio writes only into a folder it created or that carries its run marker
  ``.gradfolio-run`` (a JSON manifest: the run kind, its state and the files of the last complete
  run). An existing non-empty folder without it (say ``--out .`` in a project with its own
  ``config.yaml`` and ``checkpoints/``) is refused with one :class:`ConfigError`, and so is a run
  folder of another kind, an existing file, or a path that cannot be written.
* **One writer.** An exclusive ``fcntl.flock`` on ``.gradfolio-run.lock`` is held while the run
  writes; a second run into the same folder is refused at once with one line.
* **Atomic outputs.** Outputs are written into a private staging folder (:attr:`RunFolder.stage`)
  and moved into place by :meth:`RunFolder.publish` only when the run has succeeded: a kill or an
  error before that leaves the previous complete run as it was. The publication is journaled in
  the manifest (state ``publishing`` with the file list, ``complete`` when done), so a kill
  during the few renames is rolled forward the next time the folder is opened. Files of the
  previous run that the new one does not produce are removed, so a folder never mixes two runs.

Work files that must survive a kill to be resumed (the backtest's ``checkpoints/``, the hedging
trainer's ``checkpoint.pt``) are written directly in the folder while the lock is held.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from gradfolio.errors import ConfigError
from gradfolio.io import atomic_write_json

MARKER = ".gradfolio-run"
"""The run marker and manifest: ``{"kind", "state", "files"}`` (JSON)."""
LOCK = ".gradfolio-run.lock"
"""The lock file (``fcntl.flock``) held by the one process writing the folder."""
JOB_FILE, RESULT_FILE = "job.json", "result.json"
"""The bookkeeping files :mod:`gradfolio.experiments.distributed` keeps in a task's folder (gradfolio's
own: a folder holding only these is a task folder a run may open)."""
_STAGE_PREFIX = ".stage-"
_TRASH_PREFIX = ".trash-"


def _read_marker(folder: Path) -> dict[str, Any] | None:
    path = folder / MARKER
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{path}: the run marker cannot be read ({exc.__class__.__name__}); choose another --out folder."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise ConfigError(f"{path}: not a gradfolio run marker (no 'kind'); choose another --out folder.")
    return data


def check_run_folder(path: str | os.PathLike[str], kind: str) -> Path:
    """Check that gradfolio may write a ``kind`` run into ``path`` (nothing is written); returns the path.

    Raises
    ------
    ConfigError
        ``path`` is a file, a non-empty folder without the run marker, a run folder of another
        kind, or under a file.
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder}: is a file, not a folder; choose a new folder for the run.")
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out {folder}: {parent} is a file, not a folder; choose another path.")
            break
    if not folder.is_dir():
        return folder
    marker = _read_marker(folder)
    if marker is None:
        others = sorted(p.name for p in folder.iterdir() if p.name not in (LOCK, JOB_FILE, RESULT_FILE))
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise ConfigError(
                f"--out {folder}: folder is not empty ({shown}) and was not created by gradfolio (no {MARKER}); "
                "gradfolio writes only into new, empty or its own run folders: choose another --out."
            )
    elif marker["kind"] != kind:
        raise ConfigError(
            f"--out {folder}: holds a gradfolio '{marker['kind']}' run, not a '{kind}' run; choose another --out."
        )
    return folder


class RunFolder:
    """An open run folder: checked, created, locked and recovered (see the module docstring).

    Use as a context manager; write outputs into :attr:`stage`, then call :meth:`publish`.
    Leaving the ``with`` block without publishing discards the staged outputs.

    Parameters
    ----------
    path
        The run folder (``~`` expanded; created with its parents when missing).
    kind
        The run kind recorded in the marker (``"backtest"``, ``"hedge"``); a folder of another
        kind is refused.
    """

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        self.path = Path(path).expanduser()
        self.kind = kind
        self._lock: int | None = None
        self._stage: Path | None = None

    def __enter__(self) -> RunFolder:
        folder = check_run_folder(self.path, self.kind)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"--out {folder}: cannot write there ({exc.strerror or exc.__class__.__name__}); "
                "choose a folder you may write."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                f"--out {folder}: another gradfolio run is writing into this folder; wait for it or choose another --out."
            ) from None
        self._lock = fd
        try:
            check_run_folder(folder, self.kind)  # may have changed while waiting for the lock
            marker = _read_marker(folder)
            if marker is None:
                self._write_marker({"kind": self.kind, "state": "empty", "files": []})
            elif marker.get("state") == "publishing":
                self._roll_forward(marker)
            for leftover in folder.iterdir():  # staging folders of killed runs (we hold the lock)
                if leftover.name.startswith((_STAGE_PREFIX, _TRASH_PREFIX)):
                    shutil.rmtree(leftover, ignore_errors=True)
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    def _write_marker(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.path / MARKER, data)

    @property
    def marker(self) -> dict[str, Any]:
        """The manifest: ``kind``, ``state`` (``empty``, ``publishing``, ``complete``) and ``files``."""
        return _read_marker(self.path) or {"kind": self.kind, "state": "empty", "files": []}

    @property
    def stage(self) -> Path:
        """A private empty folder inside the run folder where this run writes its outputs."""
        if self._lock is None:
            raise RuntimeError("RunFolder.stage used outside its 'with' block")
        if self._stage is None:
            self._stage = Path(tempfile.mkdtemp(prefix=_STAGE_PREFIX, dir=self.path))
        return self._stage

    def publish(self, add: bool = False) -> Path:
        """Move every staged output into the run folder (replacing the previous run's); returns the folder.

        The previous run's files that this run did not write are removed, unless ``add`` (outputs
        added to the run, e.g. an evaluation report next to a trained agent). Journaled: a kill in
        the middle is completed the next time the folder is opened.
        """
        stage = self.stage
        names = sorted(p.name for p in stage.iterdir())
        previous = [str(n) for n in self.marker.get("files", [])]
        journal = {
            "kind": self.kind, "state": "publishing", "stage": stage.name,
            "files": sorted(set(names) | set(previous)) if add else names,
            "remove": [] if add else [n for n in previous if n not in names],
        }
        self._write_marker(journal)
        self._stage = None  # from here the stage belongs to the journal: a kill is rolled forward
        self._roll_forward(journal)
        return self.path

    def _roll_forward(self, journal: dict[str, Any]) -> None:
        stage = self.path / str(journal.get("stage", ""))
        files = [str(n) for n in journal.get("files", [])]
        if not stage.name.startswith(_STAGE_PREFIX) or any("/" in n or n.startswith(".") for n in files):
            raise ConfigError(f"{self.path / MARKER}: corrupt run manifest; choose another --out folder.")
        for name in files:
            src, dst = stage / name, self.path / name
            if not src.exists() and not src.is_symlink():
                continue  # moved before a kill
            if dst.is_dir() and not dst.is_symlink():
                trash = Path(tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=self.path))
                os.replace(dst, trash / name)
            os.replace(src, dst)
        for name in journal.get("remove", []):
            if "/" in str(name) or str(name).startswith("."):
                continue
            target = self.path / str(name)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists() or target.is_symlink():
                target.unlink()
        self._write_marker({"kind": self.kind, "state": "complete", "files": files})
        for leftover in self.path.iterdir():
            if leftover.name.startswith(_TRASH_PREFIX) or leftover == stage:
                shutil.rmtree(leftover, ignore_errors=True)


__all__ = ["MARKER", "LOCK", "RunFolder", "check_run_folder"]
