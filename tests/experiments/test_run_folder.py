"""RunFolder: ownership marker, one writer (flock), staged outputs published at once, roll-forward."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gradfolio.errors import ConfigError
from gradfolio.experiments import run_folder as rf
from gradfolio.experiments.run_folder import LOCK, MARKER, RunFolder, check_run_folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), the lock file left out."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK
    }


def publish(folder: Path, files: dict[str, str], kind: str = "backtest", add: bool = False) -> None:
    with RunFolder(folder, kind) as run:
        for name, text in files.items():
            (run.stage / name).parent.mkdir(parents=True, exist_ok=True)
            (run.stage / name).write_text(text)
        run.publish(add=add)


def test_new_folder_gets_the_marker_and_the_published_files(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "run"
    publish(folder, {"metrics.json": "1", "strategies/x/strategy.json": "{}"})
    marker = json.loads((folder / MARKER).read_text())
    assert marker == {"kind": "backtest", "state": "complete", "files": ["metrics.json", "strategies"]}
    assert snapshot(folder) == {
        MARKER: (folder / MARKER).read_bytes(), "metrics.json": b"1", "strategies/x/strategy.json": b"{}"
    }
    # a second run replaces every file of the first, removes those it does not write, keeps work files
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "trainer.pt").write_bytes(b"work")
    publish(folder, {"metrics.json": "2", "report.html": "<p>"})
    assert sorted(p.name for p in folder.iterdir()) == sorted([MARKER, LOCK, "checkpoints", "metrics.json", "report.html"])
    assert (folder / "metrics.json").read_text() == "2" and (folder / "checkpoints" / "trainer.pt").read_bytes() == b"work"
    # add=True joins the files already there
    publish(folder, {"extra.md": "x"}, add=True)
    assert json.loads((folder / MARKER).read_text())["files"] == ["extra.md", "metrics.json", "report.html"]
    assert (folder / "report.html").read_text() == "<p>"


def test_empty_folder_is_adopted_and_a_failed_run_leaves_the_previous_one(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    publish(folder, {"metrics.json": "old"})
    before = snapshot(folder)
    with pytest.raises(RuntimeError, match="after training"):
        with RunFolder(folder, "backtest") as run:
            (run.stage / "metrics.json").write_text("new")
            raise RuntimeError("a config that fails after training")
    assert snapshot(folder) == before
    assert not [p for p in folder.iterdir() if p.name.startswith(".stage-")]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: (p.mkdir(), (p / "config.yaml").write_text("# mine\n")),
         r"^--out .*: folder is not empty \(config.yaml\) and was not created by gradfolio"),
        (lambda p: (p.parent.mkdir(exist_ok=True), p.write_text("a file")), r"^--out .*: is a file, not a folder"),
        (lambda p: (p.mkdir(), (p / MARKER).write_text('{"kind": "hedge", "state": "complete", "files": []}')),
         r"holds a gradfolio 'hedge' run, not a 'backtest' run"),
        (lambda p: (p.mkdir(), (p / MARKER).write_text("{not json")), r"the run marker cannot be read"),
    ],
)
def test_foreign_targets_are_refused_unchanged(tmp_path: Path, make, match: str) -> None:
    target = tmp_path / "out"
    make(target)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=match):
        with RunFolder(target, "backtest"):
            pass
    with pytest.raises(ConfigError, match=match):
        check_run_folder(target, "backtest")
    assert snapshot(tmp_path) == before


def test_unwritable_paths_are_one_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"file is a file, not a folder; choose another path"):
        RunFolder(tmp_path / "file" / "run", "backtest").__enter__()
    with pytest.raises(ConfigError, match=r"^--out /sys/gradfolio-run: cannot write there \(Operation not permitted\)"):
        RunFolder("/sys/gradfolio-run", "backtest").__enter__()
    if os.geteuid() != 0:  # root writes into a read-only folder anyway
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(ConfigError, match="cannot write there"):
            RunFolder(ro, "backtest").__enter__()


def test_a_second_writer_is_refused_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with RunFolder(folder, "backtest"):
        with pytest.raises(ConfigError, match=r"^--out .*run: another gradfolio run is writing into this folder"):
            RunFolder(folder, "backtest").__enter__()
    # another process holding the lock
    code = (
        "import sys, time; from gradfolio.experiments.run_folder import RunFolder\n"
        "with RunFolder(sys.argv[1], 'backtest'):\n    print('locked', flush=True); time.sleep(30)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(rf.__file__).parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match="another gradfolio run is writing"):
            RunFolder(folder, "backtest").__enter__()
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while True:  # the lock goes with the killed process
        try:
            with RunFolder(folder, "backtest"):
                break
        except ConfigError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_kill_during_publication_is_rolled_forward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "run"
    publish(folder, {"a.txt": "old a", "b.txt": "old b", "gone.txt": "old", "dir/x": "old x"})
    replace, calls = os.replace, []

    def killed(src: object, dst: object) -> None:
        calls.append(dst)
        if len(calls) == 3:  # after the marker and one output were moved
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(rf.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        publish(folder, {"a.txt": "new a", "b.txt": "new b", "dir/x": "new x"})
    monkeypatch.setattr(rf.os, "replace", replace)
    assert json.loads((folder / MARKER).read_text())["state"] == "publishing"
    # the next open completes the publication: the new run only, nothing of the old one
    with RunFolder(folder, "backtest"):
        pass
    files = snapshot(folder)
    files.pop(MARKER)
    assert files == {"a.txt": b"new a", "b.txt": b"new b", "dir/x": b"new x"}
    assert sorted(p.name for p in folder.iterdir()) == sorted([MARKER, LOCK, "a.txt", "b.txt", "dir"])
