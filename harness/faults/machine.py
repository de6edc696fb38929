"""What faults need from a running QEMU target, and where a partition lies on its disk."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from harness.errors import HarnessConfigError
from harness.images.diskimage import Partition, partitions
from harness.machines.blockgraph import DiskGraph
from harness.machines.qmp import QmpChannel


class QemuProcess(Protocol):
    """The part of ABQEMUDriver a fault uses."""

    @property
    def pid(self) -> int | None: ...

    fault_qmp_socket: Path | None
    disk_graph: DiskGraph | None
    watchdog: str | None  # the QEMU watchdog device model, if the machine has one

    def kill_process(self) -> None: ...


@dataclass(frozen=True)
class Machine:
    """A QEMU target as faults see it: its process, its disk, and how to cut power.

    `power_cut` settles the harness's view of a device whose power went (the
    strategy's state, the shell); faults call it after they killed QEMU.
    """

    qemu: QemuProcess
    power_cut: Callable[[], None]
    disk: Path | None
    partition_of: Callable[[str | int], Partition]

    def require_running(self, kind: str) -> int:
        """QEMU's pid; a one-line error if the device is not powered."""
        pid = self.qemu.pid
        if pid is None:
            raise HarnessConfigError(
                f"fault '{kind}' needs a running device, but QEMU is not running",
                "use the 'booted' fixture (or power_on()) before arming the fault",
            )
        return pid

    def require_graph(self, kind: str) -> DiskGraph:
        graph = self.qemu.disk_graph
        if graph is None or self.qemu.fault_qmp_socket is None or self.disk is None:
            raise HarnessConfigError(
                f"fault '{kind}' needs the boot disk as ABQEMUDriver's -blockdev graph",
                "run it on a QEMU target whose machine is virt, pc or q35 with a 'disk'",
            )
        return graph

    def qmp(self, timeout_s: float = 10.0) -> QmpChannel:
        """A fresh QMP session on the faults' own socket (one per fault, one thread)."""
        assert self.qemu.fault_qmp_socket is not None
        return QmpChannel.connect(self.qemu.fault_qmp_socket, timeout_s)


def process_gone(pid: int, timeout_s: float = 5.0) -> bool:
    """True once no process `pid` exists (or only a zombie of it), within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rpartition(")")[2].split()[0] == "Z":
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def partition_lookup(
    disk: Path | None, slots: Mapping[str, int]
) -> Callable[[str | int], Partition]:
    """Resolve a slot name ("B") or partition number to its place on the disk image."""

    def lookup(which: str | int) -> Partition:
        number = slots.get(which) if isinstance(which, str) else which
        if number is None:
            raise HarnessConfigError(
                f"no slot '{which}' on this target (slots: {dict(slots)})",
                "name a slot of the target YAML or give a partition number",
            )
        if disk is None:
            raise HarnessConfigError(
                "this target has no disk image to place a fault on", "use a QEMU target"
            )
        for part in partitions(disk):
            if part.number == number:
                return part
        raise HarnessConfigError(
            f"{disk} has no partition {number}", "check 'ab-harness: slots' in the target YAML"
        )

    return lookup
