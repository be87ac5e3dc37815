"""run_tasks: finished jobs read back, changed configs rerun in an emptied folder, resumes after a
kill, safe folder names, serial and Ray give the same results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradfolio.errors import ConfigError
from gradfolio.experiments.distributed import (
    Job,
    check_under,
    fingerprint,
    job_folder,
    read_result,
    run_tasks,
    safe_slug,
)

CALLS: list[str] = []


def square_sum(config: dict, folder: str) -> dict:
    """A job: records its call, leaves a scratch file, returns real numbers of its config."""
    CALLS.append(folder)
    (Path(folder) / "scratch.txt").write_text(str(config["x"]))
    if config.get("fail"):
        raise KeyboardInterrupt  # a kill in the middle of the job
    return {"square": config["x"] ** 2, "sum": sum(config["xs"])}


def test_finished_jobs_are_read_back_and_changed_configs_rerun(tmp_path):
    CALLS.clear()
    jobs = [Job(str(tmp_path / f"j{i}"), {"x": i + 0.5, "xs": [i, 3]}) for i in range(3)]
    first = run_tasks(square_sum, jobs, executor="serial")
    assert first == [{"square": 0.25, "sum": 3}, {"square": 2.25, "sum": 4}, {"square": 6.25, "sum": 5}]
    assert len(CALLS) == 3
    stored = json.loads((tmp_path / "j1" / "result.json").read_text())
    assert stored == {"fingerprint": fingerprint({"x": 1.5, "xs": [1, 3]}), "result": {"square": 2.25, "sum": 4}}
    # same configs: nothing runs, same results
    assert run_tasks(square_sum, jobs, executor="serial") == first and len(CALLS) == 3
    # one config changed: only that job reruns, in an emptied folder, with the new result
    (tmp_path / "j2" / "stale.bin").write_text("old checkpoint")
    jobs[2] = Job(jobs[2].folder, {"x": -4.0, "xs": [7]})
    again = run_tasks(square_sum, jobs, executor="serial")
    assert again == [first[0], first[1], {"square": 16.0, "sum": 7}]
    assert CALLS[3:] == [str((tmp_path / "j2").resolve())]
    assert not (tmp_path / "j2" / "stale.bin").exists()


def test_clear_stale_false_leaves_another_configs_folder_to_the_job(tmp_path):
    """``clear_stale=False`` (the seeds of ``hedge train --seeds``): a changed config still reruns, but
    the folder keeps what the earlier config left (the job resumes or refuses by itself)."""
    CALLS.clear()
    job = Job(str(tmp_path / "j"), {"x": 2.5, "xs": [1]})
    assert run_tasks(square_sum, [job], executor="serial", clear_stale=False) == [{"square": 6.25, "sum": 1}]
    (tmp_path / "j" / "checkpoint.pt").write_text("earlier training")
    changed = Job(job.folder, {"x": -3.0, "xs": [4, 5]})
    assert run_tasks(square_sum, [changed], executor="serial", clear_stale=False) == [{"square": 9.0, "sum": 9}]
    assert len(CALLS) == 2 and (tmp_path / "j" / "checkpoint.pt").read_text() == "earlier training"
    assert read_result(changed) == (True, {"square": 9.0, "sum": 9})
    # the default empties it
    run_tasks(square_sum, [job], executor="serial")
    assert not (tmp_path / "j" / "checkpoint.pt").exists() and len(CALLS) == 3


def test_a_killed_run_resumes_without_redoing_finished_jobs(tmp_path):
    CALLS.clear()
    jobs = [Job(str(tmp_path / f"j{i}"), {"x": float(i), "xs": [i], "fail": i == 2}) for i in range(4)]
    with pytest.raises(KeyboardInterrupt):
        run_tasks(square_sum, jobs, executor="serial")
    assert len(CALLS) == 3 and read_result(jobs[1]) == (True, {"square": 1.0, "sum": 1})
    assert read_result(jobs[2]) == (False, None)
    # the job that was killed keeps its folder (its own checkpoints) when rerun with the same config
    jobs[2] = Job(jobs[2].folder, {"x": 2.0, "xs": [2], "fail": True})
    CALLS.clear()
    fixed = [j if i != 2 else Job(j.folder, {"x": 2.0, "xs": [2], "fail": False}) for i, j in enumerate(jobs)]
    out = run_tasks(square_sum, fixed, executor="serial")
    assert [r["square"] for r in out] == [0.0, 1.0, 4.0, 9.0]
    assert CALLS == [str((tmp_path / "j2").resolve()), str((tmp_path / "j3").resolve())]


def test_ray_matches_serial(tmp_path):
    jobs = [Job(str(tmp_path / "ray" / f"j{i}"), {"x": 1.25 * i, "xs": [i, -2]}) for i in range(2)]
    serial = [Job(str(tmp_path / "serial" / f"j{i}"), j.config) for i, j in enumerate(jobs)]
    out = run_tasks(square_sum, jobs, executor="ray", num_cpus=1, threads_per_task=1)
    assert out == run_tasks(square_sum, serial, executor="serial") == [
        {"square": 0.0, "sum": -2}, {"square": 1.5625, "sum": -1}]
    assert read_result(jobs[1]) == (True, {"square": 1.5625, "sum": -1})


def test_names_stay_under_the_root(tmp_path):
    assert safe_slug("..") == "__" and safe_slug("0.2%") == "0.2_" and safe_slug("a/../b") == "a_.._b"
    assert safe_slug("") == "_" and safe_slug(".hidden") == "_hidden"
    assert job_folder(tmp_path, "..", "..") == (tmp_path / "__" / "__").resolve()
    with pytest.raises(ConfigError, match="not inside"):
        check_under(tmp_path / "a", tmp_path / "a" / ".." / "b")
    with pytest.raises(ConfigError, match="not inside"):
        run_tasks(square_sum, [Job(str(tmp_path / "x"), {"x": 1, "xs": []})], executor="serial", root=tmp_path / "y")
    with pytest.raises(ConfigError, match="share the folder"):
        run_tasks(square_sum, [Job(str(tmp_path / "x"), {"x": 1, "xs": []})] * 2, executor="serial")
    with pytest.raises(ConfigError, match="executor"):
        run_tasks(square_sum, [], executor="dask")  # type: ignore[arg-type]
