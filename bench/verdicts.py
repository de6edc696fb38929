"""Benchmark: each fault scenario gives the same verdict every time it runs.

Runs the fault scenarios N times each (pytest-repeat's --count) in one
pytest run and counts each scenario's verdicts from the JUnit XML:
passed, failed, error, skipped, or finding (a known finding shown, which
the plugin reports as xfailed). A scenario is steady when all N runs gave
one verdict; the exit status is 1 if any was not. The messages of the
verdicts that were not a pass are listed, each with how often it came.
Usage: python bench/verdicts.py [--count 20] [--workers 0] [-k EXPR] [--target T] [PATH ...]
default: every scenario that injects a fault, except the crash-point sweep
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAULT_SCENARIOS = (
    "scenarios/test_power_cut_in_first_boot.py",
    "scenarios/test_power_cut_during_env_saves.py",
    "scenarios/test_corrupt_env_copies.py",
    "scenarios/test_watchdog_rolls_back_a_hung_update.py",
)


def verdict(case: ET.Element) -> tuple[str, str]:
    """(verdict, its message's first line) of one JUnit testcase."""
    for tag in ("failure", "error", "skipped"):
        found = case.find(tag)
        if found is None:
            continue
        message = (found.get("message") or found.text or "").strip().split("\n")[0][:160]
        if tag == "skipped" and found.get("type") == "pytest.xfail":
            return "finding", message
        return {"failure": "failed"}.get(tag, tag), message
    return "passed", ""


def scenario(case: ET.Element, count: int) -> str:
    """The scenario's id without pytest-repeat's '-i-N' (or 'i-N') suffix."""
    name = re.sub(
        rf"(-|\[)\d+-{count}\]$", lambda m: "]" if m.group(1) == "-" else "", case.get("name", "")
    )
    return f"{case.get('classname', '')}::{name}"


def count_verdicts(
    junit: Path, count: int
) -> dict[str, tuple[collections.Counter[str], collections.Counter[str]]]:
    """Per scenario: its verdicts counted, and its messages (verdict: message) counted."""
    found: dict[str, tuple[collections.Counter[str], collections.Counter[str]]] = {}
    # Our own pytest run's file, not untrusted input.
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314
        outcome, message = verdict(case)
        verdicts, messages = found.setdefault(
            scenario(case, count), (collections.Counter(), collections.Counter())
        )
        verdicts[outcome] += 1
        if message:
            messages[f"{outcome}: {message}"] += 1
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=list(FAULT_SCENARIOS))
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers (0: none)")
    parser.add_argument("--target", default=None, help="--ab-target (default: the plugin's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ab-verdicts-") as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [
            sys.executable, "-m", "pytest", *args.paths, "-q", "-p", "no:randomly",
            "-m", "not nightly", "--count", str(args.count), f"--junitxml={junit}",
        ]  # fmt: skip
        command += ["-k", args.keyword] if args.keyword else []
        command += ["-n", str(args.workers)] if args.workers else []
        command += [f"--ab-target={args.target}"] if args.target else []
        started = time.monotonic()
        proc = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, check=False, timeout=6 * 3600
        )
        seconds = time.monotonic() - started
        if not junit.exists():
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return 2
        found = count_verdicts(junit, args.count)
    steady = 0
    for name, (verdicts, messages) in sorted(found.items()):
        total = sum(verdicts.values())
        same = len(verdicts) == 1 and total == args.count
        steady += same
        counts = ", ".join(f"{n} {v}" for v, n in verdicts.most_common())
        print(f"{'same' if same else 'DIFFERS'} {total}/{args.count}: {name}: {counts}")
        for message, n in messages.most_common():
            print(f"    {n}x {message}")
    print(
        f"{steady}/{len(found)} scenarios gave one verdict {args.count} times in a row "
        f"({sum(sum(v.values()) for v, _ in found.values())} runs in {seconds:.0f} s)"
    )
    return 0 if found and steady == len(found) else 1


if __name__ == "__main__":
    raise SystemExit(main())
