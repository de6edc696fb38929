"""Map byte offsets inside a FAT12/16/32 file system to what they hold.

Read once from the image bytes (boot sector, first FAT, directory tree
with long names), then answered by binary search: the reserved area
(boot sector, FSInfo, backup boot sector), the FAT copies, the FAT12/16
root directory, and in the data area the file or directory owning each
cluster.  Only the structures are read, never file contents.
"""

from __future__ import annotations

import bisect
import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["FatLayout", "read_fat"]

log = logging.getLogger(__name__)

_DIR_ENTRY = 32
_ATTR_LFN = 0x0F
_ATTR_VOLUME = 0x08
_ATTR_DIR = 0x10
_MAX_DEPTH = 32


@dataclass(frozen=True)
class FatLayout:
    """Where the structures of one FAT file system are, in bytes from its start."""

    bits: int
    sector_bytes: int
    fat_start: int
    fat_bytes: int
    fat_count: int
    root_start: int
    data_start: int
    cluster_bytes: int
    clusters: int
    size: int
    fsinfo_sector: int
    backup_boot_sector: int
    run_starts: tuple[int, ...]  # first cluster of each run of clusters with one owner
    run_ends: tuple[int, ...]  # one past its last cluster
    run_owners: tuple[str, ...]  # "uboot.env", "directory EFI/BOOT", ...

    def describe(self, offset: int) -> tuple[str, int]:
        """Words for ``offset`` (bytes into the file system) and the offset they stop at."""
        sector = offset // self.sector_bytes
        if offset < self.fat_start:
            next_sector = (sector + 1) * self.sector_bytes
            if sector == 0:
                return "FAT boot sector", next_sector
            if self.bits == 32 and sector == self.fsinfo_sector:
                return "FAT FSInfo sector", next_sector
            if self.bits == 32 and self.backup_boot_sector <= sector < self.backup_boot_sector + 3:
                return "FAT backup boot sector", next_sector
            return "FAT reserved sectors", next_sector
        if offset < self.root_start:
            copy = (offset - self.fat_start) // self.fat_bytes
            end = self.fat_start + (copy + 1) * self.fat_bytes
            return ("FAT table" if copy == 0 else f"FAT table (copy {copy + 1})"), end
        if offset < self.data_start:
            return "root directory", self.data_start
        cluster = 2 + (offset - self.data_start) // self.cluster_bytes
        if cluster >= self.clusters + 2:
            return "FAT slack after the last cluster", self.size
        i = bisect.bisect_right(self.run_starts, cluster) - 1
        if i >= 0 and cluster < self.run_ends[i]:
            return self.run_owners[i], self._cluster_offset(self.run_ends[i])
        following = self.run_starts[i + 1] if i + 1 < len(self.run_starts) else self.clusters + 2
        return "free cluster", self._cluster_offset(following)

    def _cluster_offset(self, cluster: int) -> int:
        return self.data_start + (cluster - 2) * self.cluster_bytes


def read_fat(f: Any, start: int, size: int, where: str) -> FatLayout | None:
    """The layout of the FAT file system at byte ``start`` of file ``f``, or None if none."""
    f.seek(start)
    boot = f.read(512)
    geometry = _geometry(boot, size)
    if geometry is None:
        return None
    bps, spc, reserved, nfats, root_entries, fat_sectors, total = geometry
    fat_start = reserved * bps
    fat_bytes = fat_sectors * bps
    root_start = fat_start + nfats * fat_bytes
    data_start = root_start + -(-root_entries * _DIR_ENTRY // bps) * bps
    clusters = (total * bps - data_start) // (spc * bps)
    bits = 12 if clusters < 4085 else 16 if clusters < 65525 else 32
    f.seek(start + fat_start)
    reader = _Reader(f, start, bits, f.read(fat_bytes), clusters, data_start, spc * bps)
    owners: dict[int, str] = {}
    if bits == 32:
        root_cluster = struct.unpack_from("<I", boot, 44)[0]
        for cluster in reader.chain(root_cluster):
            owners[cluster] = "root directory"
        root = reader.clusters_bytes(root_cluster)
    else:
        f.seek(start + root_start)
        root = f.read(data_start - root_start)
    reader.walk(root, "", owners, depth=0)
    starts, ends, names = _runs(owners)
    fsinfo, backup = struct.unpack_from("<HH", boot, 48) if bits == 32 else (0, 0)
    layout = FatLayout(
        bits, bps, fat_start, fat_bytes, nfats, root_start, data_start, spc * bps, clusters,
        size, fsinfo, backup, starts, ends, names,
    )  # fmt: skip
    log.debug("%s: FAT%d, %d clusters, %d owned runs", where, bits, clusters, len(starts))
    return layout


def _geometry(boot: bytes, size: int) -> tuple[int, int, int, int, int, int, int] | None:
    """BPB fields if ``boot`` looks like a FAT boot sector, else None."""
    if len(boot) < 512 or boot[510:512] != b"\x55\xaa" or boot[0] not in (0xEB, 0xE9):
        return None
    bps, spc, reserved, nfats, root_entries, total16 = struct.unpack_from("<HBHBHH", boot, 11)
    fat16, total32, fat32 = (
        struct.unpack_from("<H", boot, 22)[0],
        struct.unpack_from("<I", boot, 32)[0],
        struct.unpack_from("<I", boot, 36)[0],
    )
    fat_sectors = fat16 or fat32
    total = total16 or total32
    plausible = (
        bps in (512, 1024, 2048, 4096)
        and spc
        and spc & (spc - 1) == 0
        and reserved >= 1
        and 1 <= nfats <= 4
        and fat_sectors
        and 0 < total * bps <= size
    )
    return (bps, spc, reserved, nfats, root_entries, fat_sectors, total) if plausible else None


class _Reader:
    """Follows cluster chains and walks directories of one FAT file system."""

    def __init__(
        self, f: Any, start: int, bits: int, fat: bytes, clusters: int, data: int, cbytes: int
    ) -> None:
        self.f, self.start, self.bits, self.fat = f, start, bits, fat
        self.clusters, self.data, self.cbytes = clusters, data, cbytes
        self.end_mark = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}[bits]
        self.visited: set[int] = set()

    def next_cluster(self, cluster: int) -> int:
        if self.bits == 16:
            return int(struct.unpack_from("<H", self.fat, 2 * cluster)[0])
        if self.bits == 32:
            return int(struct.unpack_from("<I", self.fat, 4 * cluster)[0]) & 0x0FFFFFFF
        pair = struct.unpack_from("<H", self.fat, cluster + cluster // 2)[0]
        return int(pair >> 4 if cluster & 1 else pair & 0xFFF)

    def chain(self, first: int) -> Iterator[int]:
        cluster, steps = first, 0
        while 2 <= cluster < self.clusters + 2 and steps <= self.clusters:
            yield cluster
            steps += 1
            try:
                cluster = self.next_cluster(cluster)
            except struct.error:  # a FAT shorter than its cluster count claims
                return
            if cluster >= self.end_mark:
                return

    def clusters_bytes(self, first: int) -> bytes:
        parts = []
        for cluster in self.chain(first):
            self.f.seek(self.start + self.data + (cluster - 2) * self.cbytes)
            parts.append(self.f.read(self.cbytes))
        return b"".join(parts)

    def walk(self, raw: bytes, prefix: str, owners: dict[int, str], depth: int) -> None:
        for name, attr, first in _entries(raw):
            path = prefix + name
            if attr & _ATTR_DIR:
                if depth >= _MAX_DEPTH or first in self.visited or first < 2:
                    continue
                self.visited.add(first)
                for cluster in self.chain(first):
                    owners[cluster] = f"directory {path}"
                self.walk(self.clusters_bytes(first), path + "/", owners, depth + 1)
            else:
                for cluster in self.chain(first):
                    owners[cluster] = path


def _entries(raw: bytes) -> Iterator[tuple[str, int, int]]:
    """(name, attributes, first cluster) of the live entries of a directory."""
    long_parts: dict[int, bytes] = {}
    checksum = -1
    for pos in range(0, len(raw) - _DIR_ENTRY + 1, _DIR_ENTRY):
        entry = raw[pos : pos + _DIR_ENTRY]
        if entry[0] == 0:
            return
        if entry[0] == 0xE5:
            long_parts.clear()
            continue
        attr = entry[11]
        if attr == _ATTR_LFN:
            if entry[0] & 0x40:
                long_parts.clear()
                checksum = entry[13]
            long_parts[entry[0] & 0x1F] = entry[1:11] + entry[14:26] + entry[28:32]
            continue
        short = _short_name(entry)
        name = short
        if long_parts and checksum == _lfn_checksum(entry[:11]):
            text = b"".join(long_parts[k] for k in sorted(long_parts))
            name = text.decode("utf-16-le", "replace").split("\0", 1)[0].rstrip("\uffff")
        long_parts.clear()
        if attr & _ATTR_VOLUME or short in (".", ".."):
            continue
        low, high = struct.unpack_from("<H", entry, 26)[0], struct.unpack_from("<H", entry, 20)[0]
        first = low | high << 16
        yield name, attr, first


def _short_name(entry: bytes) -> str:
    base = bytes([0xE5]) + entry[1:8] if entry[0] == 0x05 else entry[:8]
    stem = base.decode("latin-1").rstrip()
    ext = entry[8:11].decode("latin-1").rstrip()
    if entry[12] & 0x08:
        stem = stem.lower()
    if entry[12] & 0x10:
        ext = ext.lower()
    return f"{stem}.{ext}" if ext else stem


def _lfn_checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def _runs(owners: dict[int, str]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...]]:
    starts: list[int] = []
    ends: list[int] = []
    names: list[str] = []
    for cluster in sorted(owners):
        name = owners[cluster]
        if names and ends[-1] == cluster and names[-1] == name:
            ends[-1] = cluster + 1
        else:
            starts.append(cluster)
            ends.append(cluster + 1)
            names.append(name)
    return tuple(starts), tuple(ends), tuple(names)
