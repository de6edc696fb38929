"""Benchmark: a fault scenario run N times gives the same verdict N times.

Runs one scenario with pytest-repeat (--count N) on 2 xdist workers and
prints how many runs passed, failed or errored, and the distinct outcomes.
Usage: python bench/repeat.py [--count 20] [--workers 2] [-k EXPR] [PATH]
default: the power cut in the first boot of the new slot, bootlimit=1
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT = "scenarios/test_power_cut_in_first_boot.py"
DEFAULT_K = "1-A"  # bootlimit 1: the cut rolls the update back


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("node", nargs="?", default=DEFAULT)
    parser.add_argument("-k", dest="keyword", default=DEFAULT_K, help="pytest -k expression")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", args.node, "-k", args.keyword, "-q", "-rA",
         "-p", "no:randomly", "--count", str(args.count), "-n", str(args.workers)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=3600,
    )  # fmt: skip
    # pytest's closing line, e.g. "20 passed in 178.31s" or "19 passed, 1 failed in ...".
    closing = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    outcomes = collections.Counter(
        {
            m.group(2): int(m.group(1))
            for m in re.finditer(r"(\d+) (passed|failed|errors?)", closing)
        }
    )
    total = sum(outcomes.values())
    seconds = time.monotonic() - started
    print(f"{args.node} -k {args.keyword!r}: {total} runs in {seconds:.0f} s: {dict(outcomes)}")
    same = total == args.count and len(outcomes) == 1
    print(
        f"same verdict {max(outcomes.values(), default=0)}/{args.count}: {'yes' if same else 'NO'}"
    )
    if not same:
        print(proc.stdout[-3000:])
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
