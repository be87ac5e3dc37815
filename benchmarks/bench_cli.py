"""Start-up and report costs of the ``gradfolio`` command line.

Prints, best of ``--repeats``, seconds:

- ``gradfolio --help``, an argument error (``gradfolio backtest --no-such-option``) and ``import
  gradfolio``, each in a fresh ``python`` process (what a user waits for): wall-clock and CPU time;
- a 1-epoch backtest (the ``gradfolio demo --quick`` config with one training epoch, run in this
  process) split into its MLflow cost (starting the run on a fresh SQLite store, logging, copying
  the artifacts, ending it), its PNG cost (:func:`~gradfolio.experiments.backtest.report.write_pngs`)
  and the rest, wall-clock — once with the defaults and once with ``tracking: false`` and ``figures: false``.

Usage: ``python benchmarks/bench_cli.py [--repeats R] [--skip-backtest]``
(``PYTHONPATH=src``, ``OMP_NUM_THREADS=1`` on a shared machine).
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


def backtest_costs(tracking: bool, figures: bool) -> dict[str, float]:
    """Seconds of a 1-epoch quick backtest: total, MLflow and PNG parts (timed by wrapping the functions)."""
    import gradfolio.experiments.backtest.report as report
    import gradfolio.experiments.backtest.run as run
    from gradfolio.experiments.backtest.config import demo_config

    spent: dict[str, float] = defaultdict(float)

    def timed(key: str, fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
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
                "tracking_uri": f"sqlite:///{Path(tmp) / 'mlflow.db'}",
                "figures": figures,
            })
            start = time.perf_counter()
            run.run_backtest(config)
            total = time.perf_counter() - start
    finally:
        run.MlflowTracker, report.write_pngs = base, write_pngs
    return {"total": total, "mlflow": spent["mlflow"], "png": spent["png"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-backtest", action="store_true")
    args = parser.parse_args()
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
        print("\n1-epoch backtest (demo --quick, 1 epoch), seconds:")
        print(f"{'tracking/figures':20s} {'total':>7s} {'MLflow':>7s} {'PNG':>7s} {'share':>7s}")
        backtest_costs(False, False)  # warm-up: data and imports cached
        for tracking, figures in ((True, True), (False, False)):
            t = backtest_costs(tracking, figures)
            share = (t["mlflow"] + t["png"]) / t["total"]
            print(f"{str(tracking) + '/' + str(figures):20s} {t['total']:7.2f} {t['mlflow']:7.2f} {t['png']:7.2f} {share:7.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
