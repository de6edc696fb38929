"""Benchmark: Ctrl-C at random moments of a scenario ends QEMU fast and leaves evidence.

Starts the bootlimit-1 rollback scenario N times in its own process group,
sends SIGINT (what Ctrl-C in a terminal sends) after a seeded random delay
(0.5 to 12 s: before, during and after boots, installs and rollbacks), and
measures from the signal to the moment no QEMU of that run is left (bar:
1 s) and to pytest's exit (bar: 2 s). Prints each run, the distribution,
how many runs left evidence (once QEMU had started: the test's serial.log
and timeline, written by its teardown) and how many QEMU temp folders were
left behind. `--load N` keeps N busy processes running meanwhile (a loaded
CI host; ended when the benchmark ends).
Usage: python bench/interrupts.py [--runs 20] [--seed 1] [--signal INT|TERM] [--load N]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.device.pace import busy_host, read_run_queue

REPO = Path(__file__).resolve().parent.parent
NODE = "scenarios/test_failed_health_rolls_back.py::test_failed_health_check_rolls_back_to_a[1]"


def qemu_pids(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and b"qemu-system" in argv[0] and any(marker.encode() in a for a in argv):
            found.append(int(proc.name))
    return found


def temp_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("labgrid-qemu-tmp-*")}


def default_sigint() -> None:  # runs in the child: a background job ignores SIGINT
    signal.signal(signal.SIGINT, signal.SIG_DFL)


QEMU_BAR_S = 1.0
PYTEST_BAR_S = 2.0


def one_run(delay: float, sig: int, work: Path) -> tuple[float | None, float, bool, bool]:
    """(seconds from the signal to no QEMU, to pytest's exit, evidence left, QEMU had started)."""
    base, results = work / "base", work / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", NODE, "-q", "-p", "no:randomly",
         f"--basetemp={base}", f"--ab-results={results}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=default_sigint,
    )  # fmt: skip
    time.sleep(delay)
    started = bool(qemu_pids(str(base)))
    sent = time.monotonic()
    os.killpg(proc.pid, sig)
    stopped = None
    while time.monotonic() - sent < 30:
        if not qemu_pids(str(base)):
            stopped = time.monotonic() - sent
            break
        time.sleep(0.02)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    exited = time.monotonic() - sent
    # The teardown wrote the test's evidence: its timeline and its serial log
    # (empty when QEMU was stopped before it printed anything).
    logs = list(results.rglob("serial.log"))
    evidence = bool(logs) and all((p.parent / "timeline.txt").is_file() for p in logs)
    return stopped, exited, evidence, started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--signal", choices=("INT", "TERM"), default="INT")
    parser.add_argument("--load", type=int, default=0, help="busy processes during the runs")
    args = parser.parse_args()
    with busy_host(args.load):
        return measure(args)


def measure(args: argparse.Namespace) -> int:
    sig = signal.SIGINT if args.signal == "INT" else signal.SIGTERM
    rng = random.Random(args.seed)  # noqa: S311 - repeatable delays, not a secret
    before = temp_folders()
    times: list[float] = []
    exits: list[float] = []
    failures = 0
    for run in range(1, args.runs + 1):
        delay = round(rng.uniform(0.5, 12.0), 2)
        with tempfile.TemporaryDirectory(prefix="ab-interrupt-") as tmp:
            stopped, exited, evidence, started = one_run(delay, sig, Path(tmp))
        ok = (
            stopped is not None
            and stopped <= QEMU_BAR_S
            and exited <= PYTEST_BAR_S
            and (evidence or not started)
        )
        failures += not ok
        exits.append(exited)
        if stopped is not None:
            times.append(stopped)
        queue = read_run_queue()
        print(
            f"run {run:2d}: SIG{args.signal} after {delay:5.2f} s: QEMU gone after "
            f"{'never' if stopped is None else f'{stopped:.2f} s'}, pytest exited after "
            f"{exited:.2f} s, evidence {'yes' if evidence else 'no'}"
            f"{'' if started else ' (no QEMU yet)'}"
            f"{f', {queue.describe()}' if queue else ''}{'' if ok else '  <-- FAIL'}",
            flush=True,
        )
    left = temp_folders() - before
    if times:
        print(
            f"QEMU stop time: median {statistics.median(times):.2f} s, max {max(times):.2f} s "
            f"over {len(times)} runs"
        )
    print(
        f"pytest exit time: median {statistics.median(exits):.2f} s, max {max(exits):.2f} s; "
        f"load: {args.load} busy processes"
    )
    print(f"{args.runs - failures}/{args.runs} ok; temp folders left: {len(left)}")
    return 1 if failures or left else 0


if __name__ == "__main__":
    raise SystemExit(main())
