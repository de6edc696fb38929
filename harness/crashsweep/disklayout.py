"""Say in words what a disk sector holds: partition, file system structure, file.

`DiskLayout.read` parses the image's bytes once (no tools, no mounting):
the MBR partition table (or the GPT behind a protective MBR) and, in every
partition that holds a FAT12/16/32 file system, the boot sector, the FAT
and the directory tree (long names included), so that each data cluster
maps to the file or directory that owns it.  `describe_sector` is then a
binary search, cheap enough for every entry of a long write log.

The words:

* in a FAT partition: ``boot: uboot-redund.env``, ``boot: FAT table``,
  ``boot: FAT table (copy 2)``, ``boot: root directory``,
  ``boot: directory EFI/BOOT``, ``boot: FAT boot sector``, or
  ``boot: free cluster`` (free *in the image the layout was read from*:
  the layout describes the base image, not files a log creates later);
* elsewhere in a partition, its place in MiB: ``rootfs B block 3/16`` is
  the 4th MiB (blocks count from 0) of a 16 MiB partition.  MiB, not
  fractions, so that a block number means the same on every partition;
* outside partitions: ``MBR``, ``GPT header``, ``GPT partition entries``,
  a named raw region (``env 0x400000``: a U-Boot env copy kept at a raw
  offset of the disk, as `regions_from_manifest` names it),
  ``unpartitioned``, ``past the end of the disk``.

Partition names come from the caller (`names_from_manifest` derives
``boot``/``rootfs A``/``rootfs B``/``data`` from an image manifest), else
from GPT partition names, else ``p<N>``.
"""

from __future__ import annotations

import bisect
import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.errors import HarnessConfigError
from harness.faults.fat import FatLayout, read_fat

__all__ = [
    "DiskLayout",
    "PartitionInfo",
    "describe_range",
    "describe_sector",
    "names_from_manifest",
    "regions_from_manifest",
]

log = logging.getLogger(__name__)

SECTOR = 512
MIB = 1 << 20
_GPT_PROTECTIVE = 0xEE
_GPT_ENTRIES_END = 34 * SECTOR  # 128 entries of 128 bytes after the header
_EXTENDED = (0x05, 0x0F, 0x85)
_MAX_RANGE_PIECES = 64


@dataclass(frozen=True)
class PartitionInfo:
    """A partition in bytes from the start of the disk, and its FAT layout if it has one."""

    number: int
    name: str
    start: int
    size: int
    fat: FatLayout | None = None

    def describe(self, offset: int) -> tuple[str, int]:
        """Words for byte ``offset`` of the disk inside this partition, and where they stop."""
        inner = offset - self.start
        if self.fat is not None:
            text, end = self.fat.describe(inner)
            return f"{self.name}: {text}", self.start + end
        block = inner // MIB
        total = -(-self.size // MIB)
        return f"{self.name} block {block}/{total}", min(
            self.start + (block + 1) * MIB, self.start + self.size
        )


@dataclass(frozen=True)
class DiskLayout:
    """The partitions of a disk image, sorted by start; see the module docstring."""

    size: int
    label: str
    partitions: tuple[PartitionInfo, ...]
    _starts: tuple[int, ...] = field(default=(), repr=False, compare=False)
    # Named raw regions outside the partitions: (start, size, name), by start.
    regions: tuple[tuple[int, int, str], ...] = ()

    @classmethod
    def read(
        cls,
        image: Path | str,
        names: Mapping[int, str] | None = None,
        regions: Sequence[tuple[int, int, str]] = (),
    ) -> DiskLayout:
        """Parse ``image``; raise `HarnessConfigError` if it has no MBR/GPT partition table.
        ``regions`` names raw byte ranges outside the partitions (start, size, name)."""
        image = Path(image)
        try:
            with image.open("rb") as f:
                layout = _read_layout(image, f, names or {})
                return replace(layout, regions=tuple(sorted(regions)))
        except OSError as err:
            raise HarnessConfigError(
                f"{image}: cannot read disk image ({err.strerror})", "check the path"
            ) from err

    def describe(self, sector: int, sector_size: int = SECTOR) -> str:
        """What the disk sector ``sector`` (in ``sector_size`` units) holds, in words."""
        return self.describe_offset(sector * sector_size)[0]

    def describe_offset(self, offset: int) -> tuple[str, int]:
        """Words for byte ``offset``, and the first byte offset they no longer cover."""
        if offset >= self.size:
            return "past the end of the disk", offset + 1
        starts = self._starts or tuple(p.start for p in self.partitions)
        i = bisect.bisect_right(starts, offset) - 1
        if i >= 0 and offset < self.partitions[i].start + self.partitions[i].size:
            return self.partitions[i].describe(offset)
        following = self.partitions[i + 1].start if i + 1 < len(self.partitions) else self.size
        if offset < SECTOR:
            return ("MBR" if self.label == "dos" else "protective MBR"), SECTOR
        if self.label == "gpt" and offset < 2 * SECTOR:
            return "GPT header", 2 * SECTOR
        if self.label == "gpt" and offset < _GPT_ENTRIES_END:
            return "GPT partition entries", min(_GPT_ENTRIES_END, following)
        for start, size, name in self.regions:
            if start <= offset < start + size:
                return name, min(start + size, following)
            if offset < start:
                following = min(following, start)
                break
        return "unpartitioned", following

    def describe_range(self, sector: int, count: int, sector_size: int = SECTOR) -> str:
        """Distinct descriptions of ``count`` sectors from ``sector``, in disk order."""
        offset = sector * sector_size
        end = offset + max(count, 1) * sector_size
        seen: list[str] = []
        pieces = 0
        while offset < end:
            text, stop = self.describe_offset(offset)
            if text not in seen:
                seen.append(text)
            offset = max(stop, offset + 1)
            pieces += 1
            if pieces >= _MAX_RANGE_PIECES and offset < end:
                seen.append("…")
                break
        if len(seen) > 3:
            return ", ".join(seen[:3]) + f" (+{len(seen) - 3} more)"
        return ", ".join(seen)


def describe_sector(layout: DiskLayout, sector: int, sector_size: int = SECTOR) -> str:
    """What ``sector`` of the disk holds, e.g. ``boot: uboot.env`` or ``rootfs B block 3/16``."""
    return layout.describe(sector, sector_size)


def describe_range(layout: DiskLayout, sector: int, count: int, sector_size: int = SECTOR) -> str:
    """What a write of ``count`` sectors at ``sector`` touches, e.g. ``boot: FAT table``."""
    return layout.describe_range(sector, count, sector_size)


def names_from_manifest(manifest: Mapping[str, Any]) -> dict[int, str]:
    """Partition names from an image manifest: boot, rootfs <slot>, data."""
    names: dict[int, str] = {}
    if isinstance(manifest.get("boot_partition"), int):
        names[manifest["boot_partition"]] = "boot"
    if isinstance(manifest.get("data_partition"), int):
        names[manifest["data_partition"]] = "data"
    slots = manifest.get("slots")
    if isinstance(slots, Mapping):
        for slot, number in slots.items():
            if isinstance(number, int):
                names[number] = f"rootfs {slot}"
    return names


def regions_from_manifest(manifest: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    """Raw regions an image manifest names: its env copies at disk offsets
    (``env 0x400000``), where the bootloader keeps the env outside every partition."""
    env = manifest.get("env")
    if not isinstance(env, Mapping) or not isinstance(env.get("size"), int):
        return []
    offsets = env.get("offsets") or []
    return [(o, env["size"], f"env {o:#x}") for o in offsets if isinstance(o, int)]


def _read_layout(image: Path, f: Any, names: Mapping[int, str]) -> DiskLayout:
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    mbr = f.read(SECTOR)
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise HarnessConfigError(
            f"{image}: no partition table (no MBR signature in sector 0)",
            "give a whole-disk image with an MBR or GPT partition table",
        )
    table = [struct.unpack_from("<B3xBxxxII", mbr, 446 + 16 * i) for i in range(4)]
    label = "dos"
    raw: list[tuple[int, int, int, str]] = []  # number, start sector, sectors, GPT name
    if any(ptype == _GPT_PROTECTIVE for _, ptype, _, _ in table):
        label = "gpt"
        raw = _gpt_entries(image, f)
    else:
        for number, (_, ptype, start, count) in enumerate(table, start=1):
            if ptype in _EXTENDED:
                log.warning("%s: extended partition %d not described", image, number)
            elif ptype and count:
                raw.append((number, start, count, ""))
    parts = []
    for number, start, count, gpt_name in sorted(raw, key=lambda r: r[1]):
        name = names.get(number) or gpt_name or f"p{number}"
        fat = read_fat(f, start * SECTOR, count * SECTOR, f"{image} partition {number}")
        parts.append(PartitionInfo(number, name, start * SECTOR, count * SECTOR, fat))
    layout = DiskLayout(size, label, tuple(parts), tuple(p.start for p in parts))
    log.debug("%s: %s", image, layout)
    return layout


def _gpt_entries(image: Path, f: Any) -> list[tuple[int, int, int, str]]:
    f.seek(SECTOR)
    header = f.read(92)
    if header[:8] != b"EFI PART":
        raise HarnessConfigError(
            f"{image}: protective MBR but no GPT header in sector 1",
            "repair the partition table (sfdisk) or give the right image",
        )
    entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
    f.seek(entries_lba * SECTOR)
    blob = f.read(count * entry_size)
    result = []
    for i in range(min(count, len(blob) // max(entry_size, 1))):
        entry = blob[i * entry_size : (i + 1) * entry_size]
        if not any(entry[:16]):
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        name = entry[56:128].decode("utf-16-le", "replace").split("\0", 1)[0]
        result.append((i + 1, first, last - first + 1, name))
    return result
