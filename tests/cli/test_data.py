"""`gradfolio data info`: output on the bundled data, one clear line on a broken file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from gradfolio.cli import app

runner = CliRunner()


def test_data_info_bundled() -> None:
    result = runner.invoke(app, ["data", "info", "--data", "sp500"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "20 assets, 8313 dates from 1990-01-02 to 2022-12-28" in result.output
    assert "AAPL" in result.output and "XOM" in result.output


def test_data_info_prints_names_literally_and_reads_numeric_dates(tmp_path: Path) -> None:
    path = tmp_path / "p[bold].csv"
    path.write_text("date,[red]A,B\n20200102,1,2\n20200103,3,4\n")
    result = runner.invoke(app, ["data", "info", "--data", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert f"{path}: 2 assets, 2 dates from 2020-01-02 to 2020-01-03" in result.output
    assert "[red]A" in result.output


def write(name: str, content: str | bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    return make


def nat_index_parquet(folder: Path) -> Path:
    path = folder / "nat.parquet"
    dates = pd.DatetimeIndex(["2020-01-01", "2020-01-02", None], name="date")
    pd.DataFrame({"A": [1.0, 2.0, 3.0], "B": [1.0, 2.0, 3.0]}, index=dates).to_parquet(path)
    return path


BROKEN = {
    "mixed time zones": (write("tz.csv", "date,A,B\n2020-01-01T00:00+01:00,1,2\n2020-01-02T00:00+02:00,1,2\n"), [],
                         "column 'date', row 3: date '2020-01-02T00:00+02:00' has another time-zone offset"),
    "NaT in a Parquet index": (nat_index_parquet, [], "the date index, position 2: the date is missing"),
    "inf price": (write("inf.csv", "date,A,B\n2020-01-01,1,2\n2020-01-02,1,inf\n"), [],
                  "column 'B', row 3 (2020-01-02): price inf is not a finite positive number"),
    "integer dates that are not YYYYMMDD": (write("serial.csv", "date,A,B\n43831,1,2\n43832,1,2\n"), [],
                                            "column 'date', row 2: cannot parse date '43831'"),
    "duplicate headers": (write("dup.csv", "date,A,A\n2020-01-01,1,2\n2020-01-02,1,2\n"), [],
                          "columns 2 and 3 are both named 'A'"),
    "negative --ffill-limit": (write("ok.csv", "date,A,B\n2020-01-01,1,2\n2020-01-02,1,2\n"), ["--ffill-limit", "-1"],
                               "ffill_limit=-1 must be an integer >= 0"),
    "ragged CSV": (write("ragged.csv", "date,A,B\n2020-01-01,1,2\n2020-01-02,1,2,3,4\n"), [],
                   "cannot read the file as CSV (Error tokenizing data. C error: Expected 3 fields in line 3, saw 5)"),
    "empty file": (write("empty.csv", ""), [], "the file is empty"),
    "non-UTF-8 bytes": (write("latin.csv", "date,Ä,B\n2020-01-01,1,2\n".encode("latin-1")), [],
                        "byte b'\\xc4' is not UTF-8 text"),
    "missing file": (lambda folder: folder / "nope.csv", [], "file not found"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_file_gives_one_line_and_exit_code_2(tmp_path: Path, case: str) -> None:
    make, options, expected = BROKEN[case]
    path = make(tmp_path)
    result = runner.invoke(app, ["data", "info", "--data", str(path), *options], env={"COLUMNS": "80"})
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # nothing else escaped
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert str(path) in lines[0] or "ffill_limit" in expected


def test_data_info_broken_csv_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,A,B\n2020-01-01T00:00+01:00,1,2\n2020-01-02T00:00Z,1,2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gradfolio", "data", "info", "--data", str(bad)],
        capture_output=True, text=True, env={"COLUMNS": "80", "PATH": ""},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert f"{bad}: column 'date', row 3: date '2020-01-02T00:00Z' has another time-zone offset" in lines[0]


def test_error_messages_print_brackets_literally(tmp_path: Path) -> None:
    # A column name that is also rich markup ("[/x]" would close a tag) appears in the error as written.
    path = tmp_path / "p.csv"
    path.write_text("date,[/x],B\n2020-01-02,1,2\n2020-01-03,-3,4\n")
    result = runner.invoke(app, ["data", "info", "--data", str(path)])
    assert result.exit_code == 2
    assert "[/x]" in result.output and "Traceback" not in result.output
