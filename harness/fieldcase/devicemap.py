"""The device's own view of its boot disk, learnt over its shell.

A capture must not use the host's view of the disk (a board has none), so
the partitions, their device nodes and their mount points come from the
running Linux: sysfs for the partition table of the disk `/` lives on,
/proc/mounts for where each partition is mounted. A partition that is not
mounted is mounted read-only for the moment it is read (`noload` for ext4,
so not even a journal replay writes to it).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from harness.device.shell import ShellLike
from harness.errors import DeviceError
from harness.fieldcase.bundle import Partition

SCRATCH = "/tmp/ab-capture"

# The disk "/" lives on, and its partitions, from sysfs (busybox applets only).
_LAYOUT = (
    "d=$(stat -c %d /); p=$(readlink -f /sys/dev/block/$((d >> 8)):$((d & 255))); "
    'disk=$(basename "$(dirname "$p")"); echo "root $(basename "$p")"; '
    'echo "disk $disk"; '
    'for x in /sys/block/$disk/$disk*; do [ -f "$x/partition" ] && '
    'echo "part $(basename "$x") $(cat "$x/partition") $(cat "$x/start") $(cat "$x/size")"; '
    "done; true"
)


@dataclass(frozen=True)
class DiskLayout:
    """The boot disk as the device sees it, and where its partitions are mounted."""

    disk: str  # e.g. /dev/vda
    partitions: tuple[Partition, ...]
    root: int  # the partition number mounted as /
    mounts: Mapping[str, tuple[str, str]]  # device node → (mount point, fs type)

    def device(self, number: int) -> str:
        for part in self.partitions:
            if part.number == number:
                return f"/dev/{part.name}"
        have = ", ".join(str(p.number) for p in self.partitions) or "none"
        raise DeviceError(
            f"the device's boot disk {self.disk} has no partition {number} (it has {have})",
            "check ab-harness.env.partition and ab-harness.slots in the target YAML",
        )

    def mount_of(self, path: str) -> tuple[int, str, str] | None:
        """(partition number, fs type, path inside it) of the boot-disk mount holding `path`."""
        best: tuple[int, str, str, str] | None = None
        for node, (point, fstype) in self.mounts.items():
            number = self._number(node)
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if number is not None and inside and (best is None or len(point) > len(best[1])):
                best = (number, point, fstype, path[len(point.rstrip("/")) + 1 :])
        return None if best is None else (best[0], best[2], best[3])

    def _number(self, node: str) -> int | None:
        name = node.removeprefix("/dev/")
        return next((p.number for p in self.partitions if p.name == name), None)


def read_layout(shell: ShellLike) -> DiskLayout:
    """The boot disk's partitions (sysfs) and mounts (/proc/mounts) on the device."""
    out = shell.exec0(_LAYOUT)
    root_name, disk, parts = None, None, []
    for line in out.splitlines():
        words = line.split()
        if words[:1] == ["root"] and len(words) == 2:
            root_name = words[1]
        elif words[:1] == ["disk"] and len(words) == 2:
            disk = words[1]
        elif words[:1] == ["part"] and len(words) == 5 and all(w.isdigit() for w in words[2:]):
            parts.append(Partition(int(words[2]), words[1], int(words[3]), int(words[4])))
    root = next((p.number for p in parts if p.name == root_name), None)
    if disk is None or root is None or not parts:
        raise DeviceError(
            f"cannot tell the boot disk from the device's sysfs: {out.strip()[:200]!r}",
            "the root file system must be a partition of a block device (sysfs mounted)",
        )
    mounts: dict[str, tuple[str, str]] = {}
    for line in shell.exec0("cat /proc/mounts").splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0].startswith("/dev/") and fields[0] not in mounts:
            mounts[fields[0]] = (fields[1], fields[2])
    return DiskLayout(f"/dev/{disk}", tuple(parts), root, mounts)


@contextmanager
def mounted(shell: ShellLike, layout: DiskLayout, number: int, name: str) -> Iterator[str]:
    """Where partition `number` can be read: its mount point, or a read-only
    mount made for the moment (undone on exit)."""
    node = layout.device(number)
    if node in layout.mounts:
        yield layout.mounts[node][0]
        return
    point = f"{SCRATCH}/{name}"
    quoted, dev = shlex.quote(point), shlex.quote(node)
    code, out = shell.exec(
        f"mkdir -p {quoted} && (mount -o ro,noload {dev} {quoted} 2>/dev/null "
        f"|| mount -o ro {dev} {quoted})"
    )
    if code != 0:
        raise DeviceError(
            f"cannot mount {node} read-only on the device to read it: {out.strip()[-160:]}",
            "check the partition holds a file system this kernel reads",
        )
    try:
        yield point
    finally:
        shell.exec(f"umount {quoted}; rmdir {quoted}")
