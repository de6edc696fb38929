"""Benchmark: how fast the crash-point sweep judges crash states and books boots.

Runs `ab-harness sweep --target T --mode M` (a fresh recording each run, then
every crash state booted or judged by its class) RUNS times, each into its
own folder under a temporary directory, and prints per run and as medians
the two rates the sweep is measured by: crash states judged a minute and
boots a minute (read from each run's sweep.json), with the wall time of the
whole command (recording included) beside them.
Usage: python bench/sweep.py [--target qemu-arm64-uboot] [--mode quick|full] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def one_run(target: str, mode: str, out: Path) -> tuple[dict[str, object], float]:
    """One sweep into `out`: its summary (sweep.json) and the command's wall seconds."""
    command = [sys.executable, "-m", "harness.cli", "sweep", "--target", target]
    command += ["--mode", mode, "--out", str(out)]
    started = time.monotonic()
    # A sweep that breaks states exits 1 and still writes its summary.
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=3600, check=False
    )
    wall = time.monotonic() - started
    summary = out / "sweep.json"
    if not summary.is_file():
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise SystemExit(f"bench: the sweep wrote no sweep.json (exit {done.returncode}): {tail}")
    return json.loads(summary.read_text()), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="qemu-arm64-uboot")
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"bench sweep: {args.target}, mode {args.mode}, {args.runs} runs, {os.cpu_count()} cores")
    states_rate, boots_rate = [], []
    with tempfile.TemporaryDirectory(prefix="ab-bench-sweep-") as tmp:
        for n in range(1, args.runs + 1):
            summary, wall = one_run(args.target, args.mode, Path(tmp) / f"run-{n}")
            states_rate.append(float(summary["states_per_minute"]))  # type: ignore[arg-type]
            boots_rate.append(float(summary["boots_per_minute"]))  # type: ignore[arg-type]
            print(
                f"run {n}: {summary['states_judged']} states judged "
                f"({summary['states_per_minute']}/min), {summary['boots']} boots "
                f"({summary['boots_per_minute']}/min) in {summary['seconds']} s of sweeping; "
                f"{wall:.0f} s for the whole command, recording included; "
                f"{summary['broke']} broke"
            )
    print(
        f"median: {statistics.median(states_rate):.1f} states judged/min, "
        f"{statistics.median(boots_rate):.1f} boots/min"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
