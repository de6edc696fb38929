"""Test helper: write dm-log-writes v1 logs byte by byte, as QEMU's blklogwrites does.

Written from the format description (superblock, then per entry one header
sector and the data sectors), independently of harness.crashsweep.writelog,
so that tests of the reader check it against a second implementation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = 0x6A736677736872
FLUSH, FUA, DISCARD, MARK = 1, 2, 4, 8


@dataclass
class LogWriter:
    """Collects entries; `render` lays them out, `save` writes the file."""

    sector_size: int = 512
    entries: list[tuple[int, int, int, bytes, bytes]] = field(default_factory=list)

    def write(self, sector: int, data: bytes, *, fua: bool = False) -> int:
        assert data and len(data) % self.sector_size == 0
        flags = FUA if fua else 0
        self.entries.append((sector, len(data) // self.sector_size, flags, data, b""))
        return len(self.entries) - 1

    def flush(self) -> int:
        self.entries.append((0, 0, FLUSH, b"", b""))
        return len(self.entries) - 1

    def discard(self, sector: int, count: int) -> int:
        self.entries.append((sector, count, DISCARD, b"", b""))
        return len(self.entries) - 1

    def mark(self, text: str) -> int:
        self.entries.append((0, 0, MARK, b"", text.encode()))
        return len(self.entries) - 1

    def raw_entry(self, sector: int, count: int, flags: int, data: bytes) -> int:
        self.entries.append((sector, count, flags, data, b""))
        return len(self.entries) - 1

    def render(self, *, counted: int | None = None, magic: int = MAGIC, version: int = 1) -> bytes:
        """The log file; the superblock counts ``counted`` entries (default: all)."""
        size = self.sector_size
        count = len(self.entries) if counted is None else counted
        out = bytearray(struct.pack("<QQQI", magic, version, count, size).ljust(size, b"\0"))
        for sector, nr, flags, data, mark in self.entries:
            header = struct.pack("<QQQQ", sector, nr, flags, len(mark)) + mark
            out += header.ljust(size, b"\0") + data
        return bytes(out)

    def save(self, path: Path, **render_args: int) -> Path:
        path.write_bytes(self.render(**render_args))
        return path


def sector_bytes(value: int, count: int = 1, size: int = 512) -> bytes:
    """``count`` sectors, each filled with one byte: easy to recognise in a disk."""
    return bytes([value & 0xFF]) * (size * count)
