"""Run every benchmark script in this folder (``bench_*.py``), one after the other.

Each script prints its own table and writes ``benchmarks/results/<name>.json``; this runner
only passes ``--device`` through and reports which scripts failed.

Usage: ``python benchmarks/run_all.py [--device cpu|cuda] [--only NAME ...]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--only", nargs="*", default=None, help="script names without bench_ / .py")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    failed = []
    for script in scripts:
        print(f"\n=== {script.name} (device={args.device}) ===", flush=True)
        if subprocess.run([sys.executable, str(script), "--device", args.device], check=False).returncode:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
