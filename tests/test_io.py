"""Atomic writes leave the old file or the new one, never half of one (checkpoints: tests/test_checkpoint.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from gradfolio.io import atomic_write, atomic_write_json, atomic_write_text


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"a": 1})

    def explode(fh) -> None:  # type: ignore[no-untyped-def]
        fh.write(b'{"a": 2, "trunc')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_text_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "report.html"
    atomic_write_text(target, "<html>é</html>")
    assert target.read_text(encoding="utf-8") == "<html>é</html>"


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_new_files_get_umask_permissions_and_replaced_files_keep_theirs(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        fresh = atomic_write_text(tmp_path / "report.html", "x")
        assert fresh.stat().st_mode & 0o777 == 0o640  # 0o666 less the umask, as open() would give
        (tmp_path / "shared.json").write_text("{}")
        os.chmod(tmp_path / "shared.json", 0o604)
        replaced = atomic_write_text(tmp_path / "shared.json", "{}")
        assert replaced.stat().st_mode & 0o777 == 0o604
    finally:
        os.umask(old)
