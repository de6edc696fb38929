"""Choose the QEMU accelerator by trying KVM, not by trusting ``/dev/kvm``.

A ``/dev/kvm`` node proves nothing: on the machines this project runs on it
exists, yet ``qemu-system-x86_64 -accel kvm -cpu host`` aborts within 50 ms
("failed to set MSR 0x10a"). So `choose_accel` boots a firmware of a few
bytes that spins in place under ``-accel kvm`` and only picks KVM if QEMU is
still running it after a short window. Anything else falls back to TCG, with
the reason recorded so a report can say why a run was slow.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from harness.errors import EnvironmentMissing, HarnessConfigError

log = logging.getLogger(__name__)

Accel = Literal["kvm", "tcg"]
AccelRequest = Literal["auto", "kvm", "tcg"]

# How long the probe firmware must keep running under KVM to count as working.
# A broken KVM fails while QEMU sets up the vCPU (measured: ~50 ms), so 1.5 s
# is a wide margin that still keeps a session start cheap.
PROBE_WINDOW_S = 1.5

KVM_DEVICE = Path("/dev/kvm")

# stderr text that means KVM failed even if QEMU has not exited (yet).
_KVM_FAILURE_MARKERS = ("KVM internal error", "failed to")

# Spellings of one architecture by platform.machine(), Debian and QEMU.
# 32-bit ARM is "arm" (qemu-system-arm); an aarch64 host counts as another
# arch for it: KVM there could run it only on CPUs with AArch32 at EL1
# (`-cpu host,aarch64=off`), which the probe does not try.
_ARCH_ALIASES = {
    "amd64": "x86_64",
    "x86_64": "x86_64",
    "arm64": "aarch64",
    "aarch64": "aarch64",
    "arm": "arm",
    "armhf": "arm",
    "armv7l": "arm",
    "armv7": "arm",
}

# Which Debian package ships a qemu-system-<arch> binary.
_DEBIAN_PACKAGE = {
    "x86_64": "qemu-system-x86",
    "i386": "qemu-system-x86",
    "aarch64": "qemu-system-arm",
    "arm": "qemu-system-arm",
}


@dataclass(frozen=True)
class AccelChoice:
    """The accelerator a session uses, and why (one line, for logs and reports)."""

    accel: Accel
    reason: str


def choose_accel(
    qemu_bin: str,
    guest_arch: str,
    requested: AccelRequest = "auto",
    timeout_s: float = 5.0,
) -> AccelChoice:
    """Return the accelerator to boot a ``guest_arch`` guest with ``qemu_bin``.

    ``requested="tcg"`` is honoured as is. ``"auto"`` returns KVM only if a
    real KVM boot of ``qemu_bin`` kept running for the probe window, TCG
    otherwise; ``"kvm"`` returns KVM on the same condition and raises
    otherwise. The probe runs once per (binary, guest arch, timeout) per
    process, waits at most ``timeout_s`` for QEMU (1.5 s when KVM works,
    well under 0.1 s when KVM aborts) and leaves no QEMU process behind.

    Raises `EnvironmentMissing` if ``qemu_bin`` is not installed or KVM was
    required but does not work, and `HarnessConfigError` if ``requested`` is
    not a known value or KVM was required for a guest of another architecture.
    """
    if requested not in get_args(AccelRequest):
        raise HarnessConfigError(
            f"unknown accelerator request {requested!r}",
            "use --ab-accel auto, kvm or tcg",
        )
    resolved = _resolve_qemu(qemu_bin)
    if requested == "tcg":
        return AccelChoice("tcg", "tcg requested (--ab-accel, or the target's accel:)")

    guest = _normalise_arch(guest_arch)
    host = _normalise_arch(platform.machine())
    if guest != host:
        # KVM runs guest code natively, so it only ever accelerates the host's ISA.
        reason = f"guest arch {guest} differs from host {host}"
        if requested == "kvm":
            raise HarnessConfigError(f"KVM requested, but {reason}", "use --ab-accel auto or tcg")
        return AccelChoice("tcg", reason)

    choice = _probe_kvm(resolved, guest, timeout_s)
    if requested == "kvm" and choice.accel != "kvm":
        raise EnvironmentMissing(
            f"KVM requested, but {choice.reason}", "use --ab-accel auto or tcg"
        )
    return choice


def qemu_accel_args(choice: AccelChoice) -> list[str]:
    """Return the QEMU command-line arguments that select ``choice.accel``."""
    # TCG without options: QEMU picks multi-threaded TCG itself where the
    # guest/host pair supports it.
    return ["-accel", choice.accel]


def _resolve_qemu(qemu_bin: str) -> str:
    resolved = shutil.which(qemu_bin)
    if resolved is None:
        suffix = Path(qemu_bin).name.removeprefix("qemu-system-")
        package = _DEBIAN_PACKAGE.get(suffix, "qemu-system-misc")
        raise EnvironmentMissing(
            f"QEMU binary {qemu_bin!r} not found",
            f"apt-get install --no-install-recommends {package}",
        )
    return resolved


def _normalise_arch(arch: str) -> str:
    return _ARCH_ALIASES.get(arch.lower(), arch.lower())


@functools.cache
def _probe_kvm(qemu_bin: str, arch: str, timeout_s: float) -> AccelChoice:
    """Boot a spinning firmware under KVM; KVM if it is still spinning after the window."""
    if not KVM_DEVICE.exists():
        return AccelChoice("tcg", f"kvm unusable: {KVM_DEVICE} does not exist")
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return AccelChoice("tcg", f"kvm unusable: no read/write access to {KVM_DEVICE}")
    if arch not in ("x86_64", "aarch64"):
        return AccelChoice("tcg", f"no KVM probe for {arch} guests")

    window = min(PROBE_WINDOW_S, timeout_s)
    with tempfile.TemporaryDirectory(prefix="ab-harness-kvm-probe-") as tmp:
        firmware = Path(tmp) / "spin.bin"
        firmware.write_bytes(_spin_firmware(arch))
        argv = [qemu_bin, "-accel", "kvm", *_probe_machine_args(arch), "-bios", str(firmware)]
        started = time.monotonic()
        log.debug("KVM probe: %s", argv)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _, stderr = proc.communicate(timeout=window)
            survived = False
        except subprocess.TimeoutExpired:
            survived = True
            proc.kill()
            # communicate() again returns all of stderr, including what the
            # timed-out call had already read, and reaps the process.
            _, stderr = proc.communicate(timeout=max(timeout_s - window, 1.0))
        finally:
            # Whatever went wrong above, no probe QEMU outlives this function.
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        elapsed = time.monotonic() - started

    text = stderr.decode(errors="replace")
    failed = any(marker in text for marker in _KVM_FAILURE_MARKERS)
    if survived and not failed:
        choice = AccelChoice("kvm", "kvm works")
    else:
        first = _first_error_line(text) or f"{Path(qemu_bin).name} exited with {proc.returncode}"
        choice = AccelChoice("tcg", f"kvm unusable: {first}")
    log.info(
        "KVM probe of %s for %s guests: %s (%s, %.2f s, exit %s)",
        qemu_bin,
        arch,
        choice.accel,
        choice.reason,
        elapsed,
        proc.returncode,
    )
    return choice


def _probe_machine_args(arch: str) -> list[str]:
    # "-cpu host" because that is what a KVM guest runs with, and on broken
    # KVM hosts it is exactly the CPU model whose MSR setup fails.
    common = [
        "-nodefaults",
        "-nographic",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "none",
        "-monitor",
        "none",
    ]
    if arch == "x86_64":
        return ["-machine", "q35", "-cpu", "host", *common]
    return ["-machine", "virt,gic-version=host", "-cpu", "host", *common]


def _spin_firmware(arch: str) -> bytes:
    """A firmware image whose first executed instruction jumps to itself."""
    if arch == "x86_64":
        # The BIOS image is mapped so its last 16 bytes hold the reset vector
        # (0xFFFF0); "jmp $" (EB FE) there spins in real mode. The rest is hlt.
        image = bytearray(b"\xf4" * 64 * 1024)
        image[-16:-14] = b"\xeb\xfe"
        return bytes(image)
    # aarch64 virt starts executing at the first byte of -bios: "b ." is 0x14000000.
    return (0x14000000).to_bytes(4, "little") * 1024


def _first_error_line(stderr: str) -> str | None:
    """The first stderr line that is not a mere warning (QEMU warns about CPUID bits)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "warning:" not in line:
            return line
    return lines[0] if lines else None
