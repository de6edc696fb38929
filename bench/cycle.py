"""Benchmark: how long a boot and a rollback take, and what the harness costs.

Measures, on the default target (or --target):
  boot_to_shell_s  power-on to a usable shell through the harness
                   (labgrid driver, console recording, boot watcher, ShellDriver)
  bare_qemu_s      the same QEMU command line run bare under pexpect, until
                   the same shell prompt appears: the floor the harness sits on
  overhead         boot_to_shell_s / bare_qemu_s
  rollback_s       the health-fail rollback scenario (bootlimit=1), as pytest runs it
  against_s        with --against OTHER: OTHER's boot-to-shell in the same runs
                   (alternating with --target's), and ratio = boot_to_shell_s /
                   against_s: e.g. the stock flavour against the hardened reference

A TCG boot varies by +-0.3 s from run to run on a busy host, several times
the harness's own cost (about 0.1 s: driver start, QMP, shell set-up). So the
boot figures are the best of --runs runs (as timeit reports): the fastest run
is the one least disturbed by the rest of the machine. Medians are printed
too. The last line is machine-readable.
Usage: python bench/cycle.py [--runs 7] [--target qemu-arm64-uboot] [--against TARGET]
                             [--no-rollback]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

from harness.bootloaders import bootloader_for
from harness.device.live import live_target
from harness.images import ensure_image
from harness.targets.target import load_target

REPO = Path(__file__).resolve().parent.parent
PROMPT = "ab-shell# "


def harness_boot(target_name: str, workdir: Path) -> float:
    """Seconds from power-on to an active shell through the harness."""
    spec = load_target(target_name)
    image = ensure_image(spec.image) if spec.image else None
    with live_target(spec, image, workdir, bootloader_for(spec.bootloader, spec.env)) as live:
        started = time.monotonic()
        live.strategy.transition("shell")
        return time.monotonic() - started


def bare_boot(target_name: str, workdir: Path) -> float:
    """The same QEMU command line, serial on stdio, timed until the same prompt."""
    argv = qemu_argv(target_name, workdir)
    started = time.monotonic()
    child = pexpect.spawn(argv[0], argv[1:], timeout=60)
    try:
        child.expect_exact(PROMPT)
        return time.monotonic() - started
    finally:
        child.terminate(force=True)


def qemu_argv(target_name: str, workdir: Path) -> list[str]:
    """QEMU's command line as the harness builds it, over a fresh disk copy in workdir."""
    spec = load_target(target_name)
    image = ensure_image(spec.image) if spec.image else None
    with live_target(spec, image, workdir, bootloader_for(spec.bootloader, spec.env)) as live:
        qemu = live.qemu
        if qemu is None:
            raise SystemExit("bench: the target has no QEMU driver; nothing to compare against")
        return list(qemu.get_qemu_base_args())


def rollback_seconds(target_name: str, results: Path) -> float:
    """Run the health-fail rollback scenario (bootlimit=1); return its own seconds."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:labgrid",
        "-p",
        "no:cacheprovider",
        str(REPO / "scenarios" / "test_failed_health_rolls_back.py"),
        "-k",
        "rolls_back_to_a and 1",
        "--ab-target",
        target_name,
        "--ab-results",
        str(results),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        print(proc.stdout[-3000:], file=sys.stderr)
        raise SystemExit("bench: the rollback scenario failed; see above")
    row = re.search(
        r"^test_failed_health_check_rolls_back_to_a\[1\]\s+passed\s+\d+\s+([\d.]+)",
        proc.stdout,
        re.MULTILINE,
    )
    if row is None:
        raise SystemExit("bench: no summary row for the rollback scenario in pytest's output")
    return float(row.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description="boot and rollback benchmark")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--target", default="qemu-arm64-uboot")
    parser.add_argument(
        "--against", help="a second target timed in the same runs (boot to shell), for a ratio"
    )
    parser.add_argument("--no-rollback", action="store_true")
    args = parser.parse_args()

    harness_runs: list[float] = []
    bare_runs: list[float] = []
    against_runs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp:
        root = Path(tmp)
        for run in range(args.runs):
            # Alternate the order so neither side always runs on a warmer cache.
            kinds = ["harness", "bare"] + (["against"] if args.against else [])
            order = kinds if run % 2 == 0 else kinds[::-1]
            for kind in order:
                work = root / f"{kind}-{run}"
                if kind == "harness":
                    harness_runs.append(harness_boot(args.target, work))
                elif kind == "against":
                    against_runs.append(harness_boot(args.against, work))
                else:
                    bare_runs.append(bare_boot(args.target, work))
            other = f", {args.against} {against_runs[-1]:.2f} s" if args.against else ""
            print(
                f"run {run + 1}: harness {harness_runs[-1]:.2f} s, bare qemu {bare_runs[-1]:.2f} s"
                + other,
                flush=True,
            )
        rollback = float("nan") if args.no_rollback else rollback_seconds(args.target, root / "rb")

    boot, bare = min(harness_runs), min(bare_runs)
    overhead = boot / bare
    for label, runs in (
        ("harness boot-to-shell", harness_runs),
        ("bare qemu to prompt", bare_runs),
    ):
        listing = ", ".join(f"{s:.2f}" for s in runs)
        print(
            f"{label:<22} {listing} s (best {min(runs):.2f}, median {statistics.median(runs):.2f})"
        )
    medians = statistics.median(harness_runs) / statistics.median(bare_runs)
    print(f"overhead: best {overhead:.3f}, medians {medians:.3f}")
    print(f"rollback scenario (bootlimit=1): {rollback:.1f} s")
    compared = ""
    if against_runs:
        against = min(against_runs)
        listing = ", ".join(f"{s:.2f}" for s in against_runs)
        print(f"{args.against} boot-to-shell {listing} s (best {against:.2f})")
        median_ratio = statistics.median(harness_runs) / statistics.median(against_runs)
        print(
            f"{args.target} / {args.against}: best {boot / against:.3f}, medians {median_ratio:.3f}"
        )
        compared = f" against_s={against:.2f} ratio={boot / against:.3f}"
    print(
        f"boot_to_shell_s={boot:.2f} bare_qemu_s={bare:.2f} overhead={overhead:.3f} "
        f"rollback_s={rollback:.1f}" + compared
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
