"""The marker a placed power cut writes over a partition, and the host's count of
what the guest wrote over it since.

Each 512-byte sector gets text naming its own index, which no payload holds
by chance, so "no longer the marker" means "written by the guest".
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import BinaryIO, Self

from harness.images.diskimage import Partition
from harness.machines.blockgraph import SECTOR

# The live count looks at the head of one sector per guest page.
_BLOCK = 4096
_HEAD = 48


class LiveCount:
    """Counts, on the host and while the guest writes, the partition's 4 KiB blocks
    that no longer hold their marker.

    Writes land out of order (several guest requests are in flight and the
    throttle admits their pieces in turn), so progress is a count, not a
    position. The file is mapped shared, which sees QEMU's writes as they
    land; a block once written is not checked again.
    """

    def __init__(self, disk: Path, part: Partition) -> None:
        self._disk = disk
        self._start = part.start_bytes
        self._pending = list(range(0, part.size_bytes // _BLOCK))
        self._heads = [marker_sector(b * _BLOCK // SECTOR)[:_HEAD] for b in self._pending]
        self._written = 0
        self._file: BinaryIO | None = None
        self._map: mmap.mmap | None = None

    def __enter__(self) -> Self:
        self._file = self._disk.open("rb")
        self._map = mmap.mmap(self._file.fileno(), 0, prot=mmap.PROT_READ)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._map is not None:
            self._map.close()
        if self._file is not None:
            self._file.close()

    def written_bytes(self) -> int:
        assert self._map is not None
        still: list[int] = []
        for block in self._pending:
            at = self._start + block * _BLOCK
            if self._map[at : at + _HEAD] == self._heads[block]:
                still.append(block)
            else:
                self._written += _BLOCK
        self._pending = still
        return self._written


def marker_sector(index: int) -> bytes:
    """The marker of sector `index` of a partition: text no payload holds by chance."""
    head = f"ab-harness unwritten sector {index:012d}\n".encode()
    return head + b"\xa5" * (SECTOR - len(head))


def fill_marker(disk: Path, part: Partition) -> None:
    """Fill the partition with markers, from the host, before the guest writes it.

    Safe while the guest runs: nothing on the device reads the inactive slot
    before the install overwrites it, and QEMU keeps no cache of the file.
    """
    sectors = part.size_bytes // SECTOR
    with disk.open("r+b") as f:
        f.seek(part.start_bytes)
        chunk = 2048  # sectors per write: 1 MiB
        for first in range(0, sectors, chunk):
            f.write(b"".join(marker_sector(i) for i in range(first, min(first + chunk, sectors))))


def count_unmarked(disk: Path, part: Partition) -> dict[str, int]:
    """How much of the partition the guest wrote since `fill_marker`, read on the host.

    `written_bytes` counts sectors that no longer hold their marker;
    `prefix_bytes` is where the first still-marked sector starts (a
    sequential writer's progress).
    """
    with disk.open("rb") as f:
        f.seek(part.start_bytes)
        data = f.read(part.size_bytes)
    written = 0
    prefix: int | None = None
    view = memoryview(data)
    for i in range(len(data) // SECTOR):
        if view[i * SECTOR : (i + 1) * SECTOR] == marker_sector(i):
            if prefix is None:
                prefix = i * SECTOR
        else:
            written += SECTOR
    return {
        "written_bytes": written,
        "prefix_bytes": part.size_bytes if prefix is None else prefix,
    }
