"""The scenario matrix on 1 and on 2 pytest-xdist workers, in one run.

    .venv/bin/python bench/matrix.py [--targets all] [-k EXPR]

Runs `pytest scenarios --ab-target TARGETS -m "not nightly"` twice, first
with one worker, then with two (`-n 1`, `-n 2`; one VM per worker), and
prints both wall times, the ratio (bar: <= 0.65) and each run's counts.
The last line is machine-readable.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_matrix(workers: int, targets: str, keyword: str | None, results: Path) -> tuple[float, str]:
    """Wall seconds of one matrix run and pytest's closing line; exits on failure."""
    cmd = [
        sys.executable, "-m", "pytest", "scenarios", "-q", "-p", "no:cacheprovider",
        "--ab-target", targets, "-m", "not nightly", "-n", str(workers),
        "--ab-results", str(results),
    ]  # fmt: skip
    if keyword:
        cmd += ["-k", keyword]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    seconds = time.monotonic() - started
    closing = re.findall(r"^=*\s*(\d+ (?:passed|failed).*?) in [\d.]+s", proc.stdout, re.M)
    if proc.returncode != 0:
        print(proc.stdout[-4000:], file=sys.stderr)
        raise SystemExit(f"bench: the matrix failed with {workers} worker(s); see above")
    return seconds, closing[-1] if closing else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="all", help="--ab-target value (default: all)")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression, to bench a subset")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ab-bench-matrix-") as tmp:
        one, one_counts = run_matrix(1, args.targets, args.keyword, Path(tmp) / "one")
        print(f"1 worker : {one:7.1f} s  ({one_counts})", flush=True)
        two, two_counts = run_matrix(2, args.targets, args.keyword, Path(tmp) / "two")
        print(f"2 workers: {two:7.1f} s  ({two_counts})", flush=True)
    ratio = two / one
    print(f"ratio 2/1 workers: {ratio:.2f} (bar <= 0.65)")
    print(f"one_worker_s={one:.1f} two_workers_s={two:.1f} ratio={ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
