"""Benchmark: how many crash states per second become disks, per method.

Records a real write log first (the reference image booted to its shell
under QEMU's blklogwrites, then ``fw_setenv ab_test 1; sync``), unless
``--log`` and ``--base`` name an existing log and the pristine disk it
was recorded on.  Then every crash state of the log (``ordered`` at each
index and the ``volatile-cache`` states at each index) is materialized
with each method, ``--rounds`` times; the best round is reported (the
machine is shared, so the fastest round is the least disturbed one).
Fingerprints (no disk written) are timed too.  The last line is JSON.

Usage: python bench/crashstate.py [--rounds 3] [--log LOG --base BASE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pexpect

from harness.crashsweep.crashdisk import METHODS, materialize
from harness.crashsweep.crashstate import MODELS, CrashState, crash_states, fingerprint
from harness.crashsweep.writelog import WriteLog
from harness.images import ensure_image

PROMPT = "ab-shell# "


def record(workdir: Path) -> tuple[Path, Path]:
    """Boot the reference image with a write log; return (log, pristine base)."""
    image = ensure_image("arm64-uboot")
    base = workdir / "base.img"
    subprocess.run(["cp", "--sparse=always", str(image.file("disk")), str(base)], check=True)
    live = workdir / "disk.img"
    shutil.copyfile(base, live)
    log_path = workdir / "log.bin"
    log_path.touch()
    blockdev = (
        "driver=blklogwrites,node-name=disk0,file.driver=raw,file.file.driver=file,"
        f"file.file.filename={live},log.driver=file,log.filename={log_path},log-sector-size=512"
    )
    argv = [
        *("-M", "virt", "-cpu", "cortex-a57", "-m", "512M", "-nographic", "-nic", "none"),
        *("-bios", str(image.file("bios"))),
        *("-drive", f"if=pflash,unit=1,readonly=on,format=raw,file={image.file('factory_env')}"),
        *("-blockdev", blockdev, "-device", "virtio-blk-pci,drive=disk0"),
    ]
    qemu = pexpect.spawn("qemu-system-aarch64", argv, timeout=60, encoding="utf-8")
    try:
        qemu.expect_exact(PROMPT)
        qemu.sendline("fw_setenv ab_test 1; sync; echo BENCH-$((1+1))")
        qemu.expect_exact("BENCH-2")
        qemu.expect_exact(PROMPT)
        qemu.send("\x01x")
        qemu.expect(pexpect.EOF, timeout=30)
    finally:
        qemu.terminate(force=True)
    return log_path, base


def all_states(wlog: WriteLog) -> list[CrashState]:
    return [s for k in range(len(wlog) + 1) for m in MODELS for s in crash_states(wlog, k, m)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--log", type=Path)
    parser.add_argument("--base", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp:
        work = Path(tmp)
        if args.log and args.base:
            log_path, base = args.log, args.base
        else:
            log_path, base = record(work)
        wlog = WriteLog.open(log_path)
        states = all_states(wlog)
        stat = base.stat()
        print(wlog.describe())
        print(
            f"base {base}: {stat.st_size / 1e6:.1f} MB, {stat.st_blocks * 512 / 1e6:.1f} MB "
            f"allocated; {len(states)} crash states"
        )
        results: dict[str, float] = {}
        for method in METHODS:
            best = float("inf")
            written = 0
            for _ in range(args.rounds):
                started = time.perf_counter()
                for i, state in enumerate(states):
                    disk = materialize(base, wlog, state, work / f"s{i % 2}", method=method)
                    written = disk.path.stat().st_blocks * 512
                best = min(best, time.perf_counter() - started)
            results[method] = len(states) / best
            print(
                f"{method:<8} {results[method]:6.1f} states/s  "
                f"({best / len(states) * 1000:.1f} ms each; last disk {written / 1e6:.2f} MB "
                "allocated)"
            )
        regions = [(0, 1 << 20)]  # first MiB: MBR + FAT boot sector
        started = time.perf_counter()
        for state in states:
            fingerprint(base, wlog, state, regions)
        results["fingerprint"] = len(states) / (time.perf_counter() - started)
        print(f"fingerprint {results['fingerprint']:.0f} states/s (1 MiB region)")
        print(json.dumps({"states": len(states), "states_per_s": results}))


if __name__ == "__main__":
    main()
