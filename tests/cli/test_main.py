"""`gradfolio --help` and argument errors load no heavy library: torch and pandas come with the commands.

A test of imports (``python -X importtime`` lists every module a process imports), not a timing test;
``benchmarks/bench_cli.py`` prints the times.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ("torch", "pandas", "matplotlib", "mlflow", "scipy")


def imported_modules(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python -X importtime -m gradfolio ARGS``; the result and the top-level names of the modules it imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gradfolio", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    names = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    return proc, names


@pytest.mark.parametrize(
    ("args", "code", "shown"),
    [
        (["--help"], 0, "backtest"),
        (["hedge", "--help"], 0, "baselines"),
        (["hedge", "train", "--help"], 0, "--optimizer"),
        (["backtest", "--no-such-option"], 2, "No such option"),
        (["backtest"], 2, "--config"),  # a required option missing
    ],
)
def test_help_and_argument_errors_import_neither_torch_nor_pandas(args: list[str], code: int, shown: str) -> None:
    proc, names = imported_modules(*args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert shown in proc.stdout + proc.stderr
    assert "gradfolio" in names and "typer" in names  # the listing did record the imports
    assert not names & set(HEAVY), sorted(names & set(HEAVY))


def test_a_command_does_import_its_libraries() -> None:
    """The check above can fail: running a command (an error inside it) imports pandas."""
    proc, names = imported_modules("data", "info", "--data", "/no/such/prices.csv")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pandas" in names
