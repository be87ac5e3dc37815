"""`gradfolio data info`: output on the bundled data, one clear line on a broken file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gradfolio.cli import app

runner = CliRunner()


def test_data_info_bundled() -> None:
    result = runner.invoke(app, ["data", "info", "--data", "sp500"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "20 assets, 8313 dates from 1990-01-02 to 2022-12-28" in result.output
    assert "AAPL" in result.output and "XOM" in result.output


def test_data_info_broken_csv_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,A,B\n2020-01-01,1,2\n2020-01-02,oops,2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gradfolio", "data", "info", "--data", str(bad)],
        capture_output=True, text=True, env={"COLUMNS": "400", "PATH": ""},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "column 'A', row 3" in lines[0] and "'oops' is not a number" in lines[0]
