"""Read a dm-log-writes v1 write log, as QEMU's ``blklogwrites`` filter records it.

Layout (all integers little-endian), in units of the log's sector size:

* sector 0, the superblock: magic ``0x6a736677736872`` (u64), version 1
  (u64), entry count (u64), sector size (u32);
* from sector 1, entries back to back: one sector holding ``sector``,
  ``nr_sectors``, ``flags`` and ``data_len`` (u64 each), followed by the
  ``nr_sectors`` data sectors of the write (none for a discard, a flush
  or a mark).  ``sector`` and ``nr_sectors`` count log-sector-size units.

Flags: FLUSH 1 (QEMU logs a flush as an entry with no sectors), FUA 2,
DISCARD 4, MARK 8 (Linux's dm target only: the mark text follows the
entry header inside its sector, ``data_len`` bytes), METADATA 16 (Linux).

The power-cut rule.  QEMU rewrites the superblock only after logging a
FLUSH, so its entry count lags the file by every entry logged since the
last flush, and a QEMU killed mid-write leaves a half-written last entry.
Lagging is normal, so this reader trusts the superblock for the entries
it counts (any defect among them is an error) and then keeps reading:
every further entry that is *complete* in the file and has known flags is
trusted too; the first incomplete or implausible one ends the log and its
bytes are reported as ``dropped_tail_bytes`` (logged as a warning).  A
superblock of zeros means QEMU was stopped before the first flush; then
all entries are tail entries and the sector size is the one assumed by
the caller (512, QEMU's default).  QEMU does not truncate an existing log
file when it starts a new one, so a recorder must hand it an empty file,
or stale entries of an older, longer log would be read as a tail.

Only entry headers are read when a log is opened (one small read each);
data is read on demand, so logs of hundreds of MB are never held in memory.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from harness.errors import HarnessConfigError

__all__ = [
    "DISCARD",
    "FLUSH",
    "FUA",
    "MAGIC",
    "MARK",
    "METADATA",
    "LogEntry",
    "WriteLog",
]

log = logging.getLogger(__name__)

MAGIC = 0x6A736677736872
VERSION = 1
FLUSH, FUA, DISCARD, MARK, METADATA = 1, 2, 4, 8, 16
KNOWN_FLAGS = FLUSH | FUA | DISCARD | MARK | METADATA

_SUPER = struct.Struct("<QQQI")
_ENTRY = struct.Struct("<QQQQ")
_MAX_SECTOR_SIZE = 1 << 24
_CHUNK = 1 << 20
_FIX_RECORD = "record again into an empty log file (QEMU does not truncate an existing log)"


@dataclass(frozen=True)
class LogEntry:
    """One logged request; its data stays in the log file at ``data_offset``."""

    index: int
    sector: int
    nr_sectors: int
    flags: int
    sector_size: int
    data_offset: int
    mark: str = ""

    @property
    def is_flush(self) -> bool:
        return bool(self.flags & FLUSH)

    @property
    def is_fua(self) -> bool:
        return bool(self.flags & FUA)

    @property
    def is_discard(self) -> bool:
        return bool(self.flags & DISCARD)

    @property
    def is_mark(self) -> bool:
        return bool(self.flags & MARK)

    @property
    def is_write(self) -> bool:
        """Whether the entry changes disk bytes (a data write or a discard)."""
        return self.nr_sectors > 0 and not self.is_mark

    @property
    def disk_offset(self) -> int:
        return self.sector * self.sector_size

    @property
    def length(self) -> int:
        return self.nr_sectors * self.sector_size

    @property
    def kind(self) -> str:
        """Short name for tables: ``write``, ``write+fua``, ``flush``, ``discard``, ``mark``."""
        if self.is_mark:
            return f"mark {self.mark!r}"
        names = []
        if self.is_flush:
            names.append("flush")
        if self.nr_sectors:
            names.append("discard" if self.is_discard else "write")
        if self.is_fua:
            names.append("fua")
        return "+".join(names) or "empty"


@dataclass(frozen=True)
class WriteLog:
    """A parsed log: entry headers in order, data read lazily from ``path``."""

    path: Path
    sector_size: int
    entries: tuple[LogEntry, ...]
    superblock_entries: int
    superblock_written: bool
    dropped_tail_bytes: int

    @classmethod
    def open(cls, path: Path | str, *, assume_sector_size: int = 512) -> WriteLog:
        """Parse the headers of the log at ``path``.

        Raises `HarnessConfigError` (one line) if the file is not a
        dm-log-writes v1 log, or if an entry the superblock counts is
        truncated or missing; see the module docstring for the tail rule.
        """
        path = Path(path)
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                return _parse(path, f, size, assume_sector_size)
        except OSError as err:
            raise HarnessConfigError(
                f"{path}: cannot read write log ({err.strerror})", "check the path"
            ) from err

    @property
    def tail_entries(self) -> int:
        """Entries trusted beyond the superblock's count (logged after the last flush)."""
        return len(self.entries) - self.superblock_entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(self.entries)

    def __getitem__(self, index: int) -> LogEntry:
        return self.entries[index]

    def data(self, entry: LogEntry, first: int = 0, count: int | None = None) -> bytes:
        """Data sectors ``first .. first+count`` of a write (zeros for a discard)."""
        return b"".join(self.chunks(entry, first, count))

    def chunks(self, entry: LogEntry, first: int = 0, count: int | None = None) -> Iterator[bytes]:
        """The same bytes as `data`, in pieces of at most 1 MiB."""
        count = entry.nr_sectors - first if count is None else count
        if first < 0 or count < 0 or first + count > entry.nr_sectors or entry.is_mark:
            raise ValueError(f"sectors {first}+{count} outside entry {entry.index}")
        left = count * entry.sector_size
        if entry.is_discard:
            while left:
                size = min(left, _CHUNK)
                yield bytes(size)
                left -= size
            return
        offset = entry.data_offset + first * entry.sector_size
        with self.path.open("rb") as f:
            while left:
                piece = os.pread(f.fileno(), min(left, _CHUNK), offset)
                if not piece:
                    raise HarnessConfigError(
                        f"{self.path}: shrank while being read (entry {entry.index})",
                        "do not write the log while reading it",
                    )
                yield piece
                offset += len(piece)
                left -= len(piece)

    def check_fits(self, disk_bytes: int) -> None:
        """Raise `HarnessConfigError` if an entry writes past a disk of ``disk_bytes``."""
        for entry in self.entries:
            if entry.is_write and entry.disk_offset + entry.length > disk_bytes:
                raise HarnessConfigError(
                    f"{self.path}: entry {entry.index} writes sectors {entry.sector}.."
                    f"{entry.sector + entry.nr_sectors - 1}, past the end of the "
                    f"{disk_bytes}-byte disk",
                    "give the disk image the log was recorded on",
                )

    def describe(self) -> str:
        """One line: entries, how many came after the last flush, what was dropped."""
        text = (
            f"{self.path}: {len(self)} entries, sector size {self.sector_size}; "
            f"superblock counts {self.superblock_entries}"
        )
        if not self.superblock_written:
            text += " (never written: no flush was logged)"
        if self.tail_entries:
            text += f", {self.tail_entries} complete entries after it trusted"
        if self.dropped_tail_bytes:
            text += f", {self.dropped_tail_bytes} bytes of an incomplete last entry dropped"
        return text


def _parse(path: Path, f: BinaryIO, size: int, assume_sector_size: int) -> WriteLog:
    head = f.read(_SUPER.size) if size else b""
    if size == 0:
        return WriteLog(path, assume_sector_size, (), 0, False, 0)
    if len(head) < _SUPER.size:
        raise HarnessConfigError(
            f"{path}: not a dm-log-writes log ({size} bytes, too short for a superblock)",
            "pass the file QEMU's blklogwrites wrote as log.filename",
        )
    magic, version, counted, sector_size = _SUPER.unpack(head)
    written = True
    f.seek(0)
    if not any(f.read(assume_sector_size)) and size > assume_sector_size:
        # QEMU writes the superblock at the first flush; before that sector 0 is a hole.
        written, sector_size = False, assume_sector_size
    elif magic != MAGIC:
        raise HarnessConfigError(
            f"{path}: not a dm-log-writes log (magic {magic:#x}, expected {MAGIC:#x})",
            "pass the file QEMU's blklogwrites wrote as log.filename",
        )
    elif version != VERSION:
        raise HarnessConfigError(
            f"{path}: unsupported dm-log-writes version {version} (this reader knows {VERSION})",
            "record the log with QEMU's blklogwrites or Linux dm-log-writes (version 1)",
        )
    if not (512 <= sector_size < _MAX_SECTOR_SIZE and sector_size & (sector_size - 1) == 0):
        raise HarnessConfigError(
            f"{path}: invalid log sector size {sector_size} in the superblock",
            "the file is damaged; " + _FIX_RECORD,
        )
    entries: list[LogEntry] = []
    offset = sector_size
    dropped = 0
    while True:
        index = len(entries)
        counted_entry = index < counted
        entry, problem = _read_entry(f, size, offset, index, sector_size)
        if entry is None:
            if counted_entry:
                _fail_counted(path, index, counted, offset, problem)
            if not written and not entries:
                raise HarnessConfigError(
                    f"{path}: not a dm-log-writes log (sector 0 is zeros and no entry "
                    f"follows: {problem})",
                    "pass the file QEMU's blklogwrites wrote as log.filename",
                )
            dropped = size - offset
            if dropped:
                log.warning(
                    "%s: ignoring the last %d bytes (%s): a power cut while QEMU logged entry %d?",
                    path,
                    dropped,
                    problem,
                    index,
                )
            break
        entries.append(entry)
        offset = entry.data_offset + (0 if entry.is_discard else entry.length)
    wlog = WriteLog(path, sector_size, tuple(entries), int(counted), written, dropped)
    log.debug("%s", wlog.describe())
    return wlog


def _read_entry(
    f: BinaryIO, size: int, offset: int, index: int, sector_size: int
) -> tuple[LogEntry | None, str]:
    """The entry at ``offset``, or None and why not ("end", "zeros", or a defect)."""
    if offset >= size:
        return None, "end"
    if offset + sector_size > size:
        return None, f"header sector cut at {size - offset} of {sector_size} bytes"
    f.seek(offset)
    header = f.read(sector_size)
    sector, nr_sectors, flags, data_len = _ENTRY.unpack_from(header)
    if not any(header):
        return None, "zeros"
    if flags & ~KNOWN_FLAGS:
        return None, f"unknown flags {flags:#x}"
    mark = ""
    if flags & MARK:
        if data_len > sector_size - _ENTRY.size:
            return None, f"mark of {data_len} bytes does not fit its sector"
        raw = header[_ENTRY.size : _ENTRY.size + data_len]
        mark = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    elif data_len:
        return None, f"data_len {data_len} on a non-mark entry (inline data is not supported)"
    if not nr_sectors and not flags & (FLUSH | MARK):
        return None, "an entry that neither writes, flushes nor marks"
    data_offset = offset + sector_size
    data_bytes = 0 if flags & (DISCARD | MARK) else nr_sectors * sector_size
    if data_offset + data_bytes > size:
        return None, (
            f"data cut at {size - data_offset} of {data_bytes} bytes (entry at byte {offset})"
        )
    entry = LogEntry(index, sector, nr_sectors, flags, sector_size, data_offset, mark)
    return entry, ""


def _fail_counted(path: Path, index: int, counted: int, offset: int, problem: str) -> None:
    if problem in ("end", "zeros"):
        raise HarnessConfigError(
            f"{path}: entry count mismatch: the superblock counts {counted} entries, "
            f"the file holds {index} (byte {offset} on is "
            f"{'missing' if problem == 'end' else 'zeros'})",
            "the log was cut short (copied while QEMU wrote it?); " + _FIX_RECORD,
        )
    raise HarnessConfigError(
        f"{path}: truncated or damaged entry {index} of {counted} at byte {offset}: {problem}",
        "the log was cut short or overwritten; " + _FIX_RECORD,
    )
