"""The virtual board's machine: the reference image's QEMU, started and killed
like a board's power supply is switched.

No QMP, no hot-plug, no reset gate: the harness reaches this board only
through its serial server and its power switch, as it reaches a real one.
The disk image is the board's own (a copy made for it); nothing on the
harness side reads it. QEMU dies with the process that runs the rig
(PR_SET_PDEATHSIG) and is killed on every exit path of `VirtualRig`.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DeviceError

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class MachineSpec:
    """What QEMU runs: the image's firmware, factory env and disk, with a user-net NIC."""

    qemu: str
    machine: str
    cpu: str
    memory: str
    bios: Path
    factory_env: Path
    disk: Path

    def command(self, uart: tuple[str, int]) -> list[str]:
        host, port = uart
        return [
            self.qemu,
            "-machine", self.machine, "-cpu", self.cpu, "-m", self.memory, "-accel", "tcg",
            "-bios", str(self.bios),
            "-drive", f"if=pflash,unit=1,format=raw,readonly=on,file={self.factory_env}",
            "-drive", f"if=virtio,format=raw,cache=unsafe,file={self.disk}",
            "-nic", "none", "-nic", "user,model=virtio-net-pci",
            "-display", "none", "-monitor", "none",
            "-chardev", f"socket,id=uart,host={host},port={port},server=off",
            "-serial", "chardev:uart",
        ]  # fmt: skip


class PoweredMachine:
    """QEMU as a powered board: `on()` starts it, `off()` kills it at once."""

    def __init__(self, spec: MachineSpec, uart: tuple[str, int], log_dir: Path) -> None:
        self._spec = spec
        self._uart = uart
        self._log_dir = log_dir
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.power_ons = 0
        # QEMU is started from this one long-lived thread: PR_SET_PDEATHSIG fires
        # when the *thread* that forked the child ends, and the switch answers
        # each request on a thread of its own that ends with the answer.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="rig-power")

    @property
    def is_on(self) -> bool:
        child = self._child
        return child is not None and child.poll() is None

    @property
    def pid(self) -> int | None:
        return self._child.pid if self.is_on and self._child is not None else None

    def on(self) -> None:
        self._spawner.submit(self._on).result(timeout=30)

    def close(self) -> None:
        """Power off for good and end the spawning thread."""
        self.off()
        self._spawner.shutdown(wait=True)

    def _on(self) -> None:
        with self._lock:
            if self.is_on:
                return
            self.power_ons += 1
            stderr = self._log_dir / f"qemu-{self.power_ons:02d}.stderr"
            with stderr.open("wb") as err:
                self._child = subprocess.Popen(
                    self._spec.command(self._uart),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    preexec_fn=_die_with_parent,
                    start_new_session=True,
                )
            time.sleep(0.05)
            if self._child.poll() is not None:
                raise DeviceError(
                    f"the virtual board's QEMU exited at power-on: "
                    f"{stderr.read_text(errors='replace').strip()[-300:]}",
                    "check the image files the rig was given",
                )
            log.info("virtual board powered on (QEMU pid %d)", self._child.pid)

    def off(self) -> int | None:
        """Cut the power: SIGKILL, then reap. Returns the pid that was killed, if any."""
        with self._lock:
            child, self._child = self._child, None
            if child is None or child.poll() is not None:
                return None
            child.kill()
            child.wait(10)
            log.info("virtual board powered off (QEMU pid %d killed)", child.pid)
            return child.pid
