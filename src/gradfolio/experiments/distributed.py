"""One fan-out helper for every sweep: jobs run as Ray tasks (or serially), each checkpointed in its folder.

A :class:`Job` is a folder and the JSON config of everything that decides its result.
:func:`run_tasks` calls ``fn(config, folder)`` for every job and writes, atomically, into the
job's folder::

    job.json       {"fingerprint": ...} written before the job starts
    result.json    {"fingerprint": ..., "result": ...} written when it finishes

The fingerprint is the SHA-256 of the canonical JSON of the config (sorted keys). A job whose
``result.json`` carries the same fingerprint is read back, not rerun, so a killed sweep resumes
where it stopped; a job whose folder holds another fingerprint (the config changed since the
folder was written) has its folder emptied and runs again, so stale results and checkpoints are
never returned or resumed. A job started but not finished (``job.json`` with the same
fingerprint, no ``result.json``) reruns in its folder, where ``fn`` may resume from its own
checkpoints.

:func:`safe_slug` and :func:`job_folder` turn user-given names (sweep settings, strategy labels)
into folder names that stay under a root: ``..``, ``/`` and other separators never escape it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gradfolio.errors import ConfigError
from gradfolio.experiments.run_folder import JOB_FILE, RESULT_FILE
from gradfolio.io import atomic_write_json

Executor = Literal["ray", "serial"]


def fingerprint(config: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of ``config`` (sorted keys, no whitespace).

    Raises
    ------
    ConfigError
        ``config`` holds a value that JSON cannot represent.
    """
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"run_tasks: a job config is not JSON ({exc}); pass plain numbers, strings, lists and dicts.") from exc
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def safe_slug(name: str) -> str:
    """A folder name from ``name``: characters outside ``[A-Za-z0-9._-]`` become ``_`` and leading dots
    are replaced, so ``..``, ``.`` or ``a/../b`` never name a parent or hidden folder."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name))
    slug = re.sub(r"^\.+", lambda m: "_" * len(m.group()), slug)
    return slug or "_"


def job_folder(root: str | os.PathLike[str], *parts: str) -> Path:
    """``root/slug(part)/...`` resolved, checked to lie under ``root``.

    Raises
    ------
    ConfigError
        The folder would leave ``root`` (cannot happen with slugs; kept as a guard for every write).
    """
    base = Path(root).resolve()
    folder = base.joinpath(*(safe_slug(p) for p in parts)).resolve()
    check_under(base, folder)
    return folder


def check_under(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` resolved; raise :class:`ConfigError` unless it lies strictly under ``root``."""
    base, target = Path(root).resolve(), Path(path).resolve()
    if target == base or not target.is_relative_to(base):
        raise ConfigError(f"run_tasks: job folder {str(path)!r} is not inside {str(base)!r}; rename the job.")
    return target


@dataclass(frozen=True)
class Job:
    """One task: ``fn(config, folder)``.

    Attributes
    ----------
    folder
        Where the job writes (its checkpoints, ``job.json``, ``result.json``).
    config
        JSON-serializable settings that decide the result, in full (fingerprinted).
    """

    folder: str
    config: Any


def read_result(job: Job) -> tuple[bool, Any]:
    """``(True, result)`` when ``job.folder/result.json`` carries the job's fingerprint, else ``(False, None)``."""
    path = Path(job.folder) / RESULT_FILE
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False, None
    if isinstance(stored, dict) and stored.get("fingerprint") == fingerprint(job.config):
        return True, stored.get("result")
    return False, None


def _prepare(folder: Path, key: str, clear_stale: bool = True) -> None:
    """Empty ``folder`` unless it was started for the same fingerprint (or ``clear_stale`` is false);
    then mark it with ``job.json``."""
    try:
        started = json.loads((folder / JOB_FILE).read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        started = None
    if clear_stale and started != key and folder.exists() and any(folder.iterdir()):
        shutil.rmtree(folder)  # another config's (or an unmarked) folder: nothing in it may be reused
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / JOB_FILE, {"fingerprint": key})


def run_job(fn: Callable[[Any, str], Any], config: Any, folder: str, threads: int | None = None,
            clear_stale: bool = True) -> Any:
    """Run one job in this process (a Ray worker or the driver) and write its ``result.json``.

    ``threads`` sets torch's intra-op threads of the process first; ``clear_stale`` as in :func:`run_tasks`.
    """
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    key = fingerprint(config)
    path = Path(folder)
    _prepare(path, key, clear_stale)
    result = fn(config, str(path))
    try:
        atomic_write_json(path / RESULT_FILE, {"fingerprint": key, "result": result})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"run_tasks: the result of the job in {folder} is not JSON ({exc}); return plain values.") from exc
    return json.loads(json.dumps(result, default=float))  # the same values a read-back gives


def run_tasks(
    fn: Callable[[Any, str], Any],
    jobs: Sequence[Job],
    *,
    executor: Executor = "ray",
    num_cpus: int | None = None,
    address: str | None = None,
    gpus_per_task: float = 0.0,
    threads_per_task: int = 1,
    root: str | os.PathLike[str] | None = None,
    clear_stale: bool = True,
) -> list[Any]:
    """``fn(job.config, job.folder)`` for every job, in order; finished jobs are read back.

    Parameters
    ----------
    fn
        A module-level function (Ray ships it to the workers) returning a JSON-serializable result.
    jobs
        The jobs; their folders must be distinct.
    executor
        ``"ray"``: jobs to run become Ray tasks on a local Ray (``num_cpus``) or the cluster at
        ``address`` (every node needs gradfolio); ``"serial"``: one after the other in this process.
    num_cpus
        CPUs of a local Ray (``None``: all).
    address
        Ray cluster address (``None``: start a local Ray unless one is running).
    gpus_per_task
        GPUs each Ray task reserves (e.g. 0.25 shares one GPU among four tasks).
    threads_per_task
        Torch threads of each task (and CPUs each Ray task reserves).
    root
        When given, every job folder must lie under it (:func:`check_under`).
    clear_stale
        Empty a job folder that was started for another config before running the job (``True``,
        the sweep's rule: nothing of another config is reused). ``False`` leaves the folder to
        ``fn``, e.g. a trainer that resumes or refuses by its own checkpoint's fingerprint (the
        seeds of ``gradfolio hedge train --seeds``, where ``--resume --episodes`` continues a run).

    Returns
    -------
    The results, in the order of ``jobs`` (as JSON round-trips them: tuples become lists).
    """
    if executor not in ("ray", "serial"):
        raise ConfigError(f"run_tasks: executor={executor!r}; use 'ray' or 'serial'.")
    if threads_per_task < 1 or gpus_per_task < 0:
        raise ConfigError(f"run_tasks: threads_per_task={threads_per_task} must be >= 1 and gpus_per_task >= 0.")
    folders = [str(Path(j.folder).resolve()) for j in jobs]
    if len(set(folders)) != len(folders):
        dup = next(f for f in folders if folders.count(f) > 1)
        raise ConfigError(f"run_tasks: two jobs share the folder {dup}; give every job its own folder.")
    if root is not None:
        for f in folders:
            check_under(root, f)
    results: list[Any] = [None] * len(jobs)
    todo: list[int] = []
    for i, job in enumerate(jobs):
        done, value = read_result(job)
        if done:
            results[i] = value
        else:
            todo.append(i)
    if not todo:
        return results
    if executor == "serial":
        for i in todo:
            results[i] = run_job(fn, jobs[i].config, folders[i], clear_stale=clear_stale)
        return results
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else num_cpus,
                 include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        task = ray.remote(run_job).options(num_cpus=threads_per_task, num_gpus=gpus_per_task)
        refs = [task.remote(fn, jobs[i].config, folders[i], threads_per_task, clear_stale) for i in todo]
        for i, value in zip(todo, ray.get(refs), strict=True):
            results[i] = value
    finally:
        if started:
            ray.shutdown()
    return results


__all__ = ["Job", "check_under", "fingerprint", "job_folder", "read_result", "run_job", "run_tasks", "safe_slug"]
