"""Start-up and report costs of the ``gradfolio`` command line.

Prints, best of ``--repeats``, seconds:

- ``gradfolio --help``, an argument error (``gradfolio backtest --no-such-option``) and ``import
  gradfolio``, each in a fresh ``python`` process (what a user waits for): wall-clock and CPU time;
- a 1-epoch backtest (the ``gradfolio demo --quick`` config with one training epoch, run in this
  process) split into its MLflow cost (starting the run on a fresh SQLite store, logging, copying
  the artifacts, ending it), its PNG cost (:func:`~gradfolio.experiments.backtest.report.write_pngs`)
  and the rest, wall-clock — once with the defaults and once with ``tracking: false`` and ``figures: false``.

Usage: ``python benchmarks/bench_cli.py [--repeats R] [--skip-backtest] [--device cuda]``
(``PYTHONPATH=src``, ``OMP_NUM_THREADS=1`` on a shared machine).
``--device cuda`` runs the 1-epoch backtest on the GPU (the config's ``device``); the start-up,
import and argument-error rows do not depend on it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from benchutil import device_arg

SRC = Path(__file__).resolve().parents[1] / "src"


def process_time(args: list[str], repeats: int) -> tuple[float, float]:
    """Best wall time and best CPU time (user + system) of ``python ARGS`` in a fresh process.

    On an idle machine the two agree; on a loaded one the CPU time is what the command costs.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    wall, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, env=env, check=False)
        wall = min(wall, time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = min(cpu, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


def backtest_costs(tracking: bool, figures: bool, store: Path, device: str = "cpu") -> dict[str, float]:
    """Seconds (wall and CPU) of a 1-epoch quick backtest: total, MLflow and PNG parts (timed by wrapping the functions).

    MLflow writes to the SQLite file ``store``: a fresh one pays for creating the schema.
    """
    from gradfolio.experiments.backtest import report, run
    from gradfolio.experiments.backtest.config import demo_config

    spent: dict[str, float] = defaultdict(float)

    def timed(key: str, fn):
        def wrapper(*args, **kwargs):
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
                spent[key + "_cpu"] += time.process_time() - cpu
        return wrapper

    base = run.MlflowTracker

    class TimedTracker(base):  # type: ignore[misc, valid-type]
        __init__ = timed("mlflow", base.__init__)
        log_params = timed("mlflow", base.log_params)
        log_metrics = timed("mlflow", base.log_metrics)
        log_artifact = timed("mlflow", base.log_artifact)
        close = timed("mlflow", base.close)

    write_pngs = report.write_pngs
    run.MlflowTracker, report.write_pngs = TimedTracker, timed("png", write_pngs)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = demo_config(quick=True, out=str(Path(tmp) / "run"))
            config = config.model_copy(update={
                "train": config.train.model_copy(update={"epochs": 1}),
                "tracking": tracking,
                "tracking_uri": f"sqlite:///{store}",
                "figures": figures,
                "device": device,
            })
            start, cpu = time.perf_counter(), time.process_time()
            run.run_backtest(config)
            spent["total"], spent["total_cpu"] = time.perf_counter() - start, time.process_time() - cpu
    finally:
        run.MlflowTracker, report.write_pngs = base, write_pngs
    return dict(spent)


def _cell(times: dict[str, float], key: str) -> str:
    """``wall (CPU)`` seconds of ``key``."""
    return f"{times.get(key, 0.0):6.2f} ({times.get(key + '_cpu', 0.0):4.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-backtest", action="store_true")
    parser.add_argument("--device", default="cpu", help="device of the 1-epoch backtest (cpu or cuda)")
    args = parser.parse_args()
    device = str(device_arg(args.device))
    rows = {
        "gradfolio --help": ["-m", "gradfolio", "--help"],
        "gradfolio backtest --no-such-option": ["-m", "gradfolio", "backtest", "--no-such-option"],
        "import gradfolio": ["-c", "import gradfolio"],
        "python (empty)": ["-c", "pass"],
    }
    print(f"{'command':40s} {'wall s':>8s} {'CPU s':>8s}")
    for name, argv in rows.items():
        wall, cpu = process_time(argv, args.repeats)
        print(f"{name:40s} {wall:8.3f} {cpu:8.3f}")
    if not args.skip_backtest:
        print("\n1-epoch backtest (demo --quick, 1 epoch), seconds wall (CPU):")
        print(f"{'tracking/figures':32s} {'total':>13s} {'MLflow':>13s} {'PNG':>13s} {'share':>6s}")
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "mlflow.db"
            backtest_costs(False, False, store, device)  # warm-up: data and imports cached
            cases = (("on/on, fresh MLflow store", True, True), ("on/on, existing store", True, True), ("off/off", False, False))
            for label, tracking, figures in cases:
                t = backtest_costs(tracking, figures, store, device)
                share = (t.get("mlflow_cpu", 0.0) + t.get("png_cpu", 0.0)) / t["total_cpu"]
                print(f"{label:32s} {_cell(t, 'total')} {_cell(t, 'mlflow')} {_cell(t, 'png')} {share:6.1%}")
        print("share: MLflow + PNG CPU time over the backtest's CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
