"""Benchmark: where a live "power cut after N bytes" lands, over several cuts.

Each run boots the reference target, installs the v2 payload into slot B,
and cuts power once N bytes (default 8 MiB) have been written, exactly as
the `faults.power_cut_after` fixture does in a test. Printed per run: the
target, the bytes that had reached the disk when power went (blockstats),
the error, and the host's count of slot-B sectors the install had written.
The last line is machine-readable; the exit code is 1 if any cut missed
the bar (1 MiB).
Usage: python bench/powercut.py [--runs 10] [--mib 8] [--rate-mib 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness.bootloaders import bootloader_for
from harness.delivery.push import UsbKeyPusher
from harness.device.boot import BootSession
from harness.device.live import live_target
from harness.device.shell import Shell
from harness.device.steps import NoSteps
from harness.faults import FaultClock, Faults, Machine
from harness.faults.machine import partition_lookup
from harness.images import ensure_image
from harness.machines.qmp import QmpChannel
from harness.targets.target import load_target

MIB = 1 << 20
BAR = MIB


def one_cut(target: str, workdir: Path, nbytes: int, rate: int) -> dict[str, object]:
    """Boot, install v2 with a cut after nbytes; return the cut's measured facts."""
    spec = load_target(target)
    image = ensure_image(spec.image) if spec.image else None
    assert image is not None
    with live_target(spec, image, workdir, bootloader_for(spec.bootloader, spec.env)) as live:
        qemu = live.qemu
        live.strategy.transition("shell")
        assert qemu is not None and qemu.qmp_socket is not None
        session = BootSession(live.strategy, NoSteps())
        machine = Machine(
            qemu, session.power_cut, live.disk, partition_lookup(live.disk, spec.slots)
        )
        faults = Faults(machine, FaultClock(time.monotonic()))
        shell = Shell(live.target.get_driver("ShellDriver", activate=False))
        with QmpChannel.connect(qemu.qmp_socket) as qmp:
            pusher = UsbKeyPusher(qmp, shell, qemu.payload_ports)
            attached = pusher.attach(image.payloads["v2"])
            with faults.power_cut_after("B", nbytes, rate=rate) as cut:
                shell.exec(
                    f"ab-update install {attached.device_path} {attached.device_sha256}",
                    timeout_s=120,
                )
        return dict(cut.require_fired().facts)


def main() -> int:
    parser = argparse.ArgumentParser(description="live power-cut placement benchmark")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--mib", type=float, default=8.0)
    parser.add_argument("--rate-mib", type=float, default=8.0)
    parser.add_argument("--target", default="qemu-arm64-uboot")
    args = parser.parse_args()
    nbytes = int(args.mib * MIB)
    errors: list[int] = []
    with tempfile.TemporaryDirectory(prefix="ab-bench-cut-") as tmp:
        for run in range(1, args.runs + 1):
            facts = one_cut(args.target, Path(tmp) / f"run-{run}", nbytes, int(args.rate_mib * MIB))
            landed = int(str(facts["landed_bytes"]))
            errors.append(landed - nbytes)
            print(
                f"run {run:2d}: target {nbytes} landed {landed} error {landed - nbytes:+d} "
                f"({(landed - nbytes) / MIB:+.3f} MiB); blockstats {facts['blockstats_bytes']}; "
                f"trigger: {facts['trigger']}",
                flush=True,
            )
    worst = max(errors, key=abs)
    print(
        f"cuts={len(errors)} target_mib={args.mib} max_abs_error_bytes={abs(worst)} "
        f"max_abs_error_mib={abs(worst) / MIB:.3f} median_error_bytes="
        f"{statistics.median(errors):.0f} bar_mib={BAR / MIB:.0f}"
    )
    return 0 if abs(worst) <= BAR else 1


if __name__ == "__main__":
    raise SystemExit(main())
