"""Disk states a power cut can leave, rebuilt exactly from a write log.

A crash state at index ``k`` is the disk after power was lost while the
guest was about to issue log entry ``k`` (``k = len(log)``: after the
last entry).  Two crash models, named in every label:

``ordered``
    every write before ``k`` reached the medium, none after: the disk has
    no volatile cache (or honours every write in order).  One state per k.

``volatile-cache``
    the disk caches writes and only a FLUSH makes them durable.  Writes
    before the last FLUSH before ``k`` are kept; a FUA write is durable by
    itself; every other write since that flush may be lost, in any subset,
    and one of them may be torn at a sector boundary (its first ``j``
    sectors kept, ``0 < j < nr_sectors``).  `crash_states` enumerates
    all-lost, all-kept, and seeded random subsets (all subsets when there
    are few), plus seeded torn variants.  A discard counts as a write
    whose data is zeros (what a raw image with ``discard=unmap`` reads).

The same seed, log and index always give the same states (``random.Random``
seeded with a string is stable across runs and Python processes).

`fingerprint` hashes what chosen byte ranges hold in a state without
building the disk, so states that leave the same bytes where the
bootloader looks can be run as one experiment.  Building a disk is
`harness.crashsweep.crashdisk.materialize`.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.crashsweep.writelog import LogEntry, WriteLog
from harness.errors import HarnessConfigError

__all__ = [
    "MODELS",
    "CrashState",
    "Extent",
    "Model",
    "TornWrite",
    "crash_states",
    "extents",
    "fingerprint",
    "ordered_state",
    "volatile_window",
]

log = logging.getLogger(__name__)

Model = Literal["ordered", "volatile-cache"]
MODELS: tuple[Model, ...] = ("ordered", "volatile-cache")
_EXHAUSTIVE_MAX = 4  # enumerate every subset up to this many volatile writes (16 states)


@dataclass(frozen=True)
class TornWrite:
    """A write of which only the first ``sectors_kept`` sectors reached the medium."""

    index: int
    sectors_kept: int


@dataclass(frozen=True)
class CrashState:
    """One disk state after a power cut; `kept` excludes the torn write, if any."""

    index: int
    model: Model
    kept: frozenset[int]
    torn: TornWrite | None
    label: str

    def applied(self, wlog: WriteLog, start: int = 0) -> list[tuple[LogEntry, int]]:
        """(entry, sectors of it on disk) for every write from log index `start`
        on that reached the medium, in order."""
        result = []
        for entry in wlog.entries[start : self.index]:
            if entry.index in self.kept:
                result.append((entry, entry.nr_sectors))
            elif self.torn is not None and entry.index == self.torn.index:
                result.append((entry, self.torn.sectors_kept))
        return result


@dataclass(frozen=True)
class Extent:
    """Final bytes of a disk range: from the log at ``log_offset``, or zeros if None."""

    disk_offset: int
    length: int
    log_offset: int | None


def ordered_state(wlog: WriteLog, index: int) -> CrashState:
    """The ``ordered`` state at ``index``: every write before it kept."""
    _check_index(wlog, index)
    kept = frozenset(e.index for e in wlog.entries[:index] if e.is_write)
    return CrashState(index, "ordered", kept, None, f"k={index} ordered")


def volatile_window(wlog: WriteLog, index: int) -> tuple[frozenset[int], tuple[LogEntry, ...]]:
    """(durable writes, writes that may be lost) before ``index`` in the volatile-cache model."""
    _check_index(wlog, index)
    last_flush = max((e.index for e in wlog.entries[:index] if e.is_flush), default=-1)
    durable = set()
    volatile = []
    for entry in wlog.entries[:index]:
        if not entry.is_write:
            continue
        # A flush entry's own data comes after its pre-flush: durable only if FUA.
        if entry.index < last_flush or entry.is_fua:
            durable.add(entry.index)
        else:
            volatile.append(entry)
    return frozenset(durable), tuple(volatile)


def crash_states(
    wlog: WriteLog, index: int, model: Model, *, seed: int = 0, samples: int = 4
) -> list[CrashState]:
    """The states to try at ``index`` under ``model``; see the module docstring.

    For ``volatile-cache``: all-lost first, then all-kept, then up to
    ``samples`` seeded random subsets and ``samples`` seeded torn variants
    (or every subset when at most four writes are volatile), duplicates
    removed.  Raises `HarnessConfigError` for an index past the end.
    """
    if model == "ordered":
        return [ordered_state(wlog, index)]
    if model != "volatile-cache":
        raise HarnessConfigError(
            f"unknown crash model {model!r}", f"use one of {', '.join(MODELS)}"
        )
    durable, volatile = volatile_window(wlog, index)
    prefix = f"k={index} volatile-cache"
    if not volatile:
        return [CrashState(index, model, durable, None, f"{prefix} (no unflushed writes)")]
    ids = [e.index for e in volatile]
    n = len(ids)
    states = [
        CrashState(index, model, durable, None, f"{prefix} all-lost ({n} unflushed)"),
        CrashState(index, model, durable | set(ids), None, f"{prefix} all-kept ({n} unflushed)"),
    ]
    rng = random.Random(f"crashstate/{seed}/{index}")  # noqa: S311 - repeatable, not secret
    if n <= _EXHAUSTIVE_MAX:
        for mask in range(1, (1 << n) - 1):
            subset = {i for bit, i in enumerate(ids) if mask >> bit & 1}
            label = f"{prefix} subset kept {_names(subset)} of {n}"
            states.append(CrashState(index, model, durable | subset, None, label))
    else:
        for sample in range(samples):
            subset = {i for i in ids if rng.random() < 0.5}
            label = f"{prefix} random#{sample} kept {len(subset)}/{n}"
            states.append(CrashState(index, model, durable | subset, None, label))
    tearable = [e for e in volatile if e.nr_sectors > 1]
    for sample in range(samples if tearable else 0):
        victim = rng.choice(tearable)
        subset = {i for i in ids if i != victim.index and rng.random() < 0.5}
        sectors = rng.randint(1, victim.nr_sectors - 1)
        torn = TornWrite(victim.index, sectors)
        label = (
            f"{prefix} torn#{sample} #{victim.index} {sectors}/{victim.nr_sectors} sectors, "
            f"kept {len(subset)}/{n - 1} others"
        )
        states.append(CrashState(index, model, durable | subset, torn, label))
    return _unique(states)


def extents(wlog: WriteLog, state: CrashState) -> list[Extent]:
    """The disk ranges the state changes, with where their final bytes are, sorted.

    Later writes win over earlier ones, down to the sector; adjacent ranges
    whose bytes lie back to back in the log (or are both zeros) are merged.
    Kept as a sorted list of disjoint ranges that each write cuts into, so
    it costs per write, not per sector: a sweep asks this for every crash
    state of a 34 MiB install (about 70,000 sectors each). The ranges of the
    log's longest fully kept prefix are shared between states (`_PrefixCache`),
    so a state costs only the writes after it: an SD card's log, a write per
    sector, has over 12,000 entries.
    """
    cache = _PREFIXES.get(wlog.path)
    if cache is None or cache.wlog is not wlog:
        cache = _PrefixCache(wlog)
        _PREFIXES.clear()  # one log at a time: a sweep plans one recording
        _PREFIXES[wlog.path] = cache
    prefix = cache.fully_kept(state)
    spans, starts = cache.at(prefix)
    for entry, sectors in state.applied(wlog, start=prefix):
        _apply(spans, starts, entry, sectors, wlog.sector_size)
    return _merged(spans)


class _PrefixCache:
    """The ranges every write before index p leaves, for the last p asked:
    states come in log order, so the cursor mostly moves forward."""

    def __init__(self, wlog: WriteLog) -> None:
        self.wlog = wlog
        self._p = 0
        self._spans: list[Extent] = []
        self._starts: list[int] = []
        self._writes = [e.index for e in wlog.entries if e.is_write]

    def fully_kept(self, state: CrashState) -> int:
        """The largest p <= state.index such that every write before p is kept whole."""
        hi = bisect.bisect_left(self._writes, state.index)
        kept = sorted(i for i in state.kept if i < state.index)
        if len(kept) == hi:  # every write before the cut (an ordered state)
            return state.index
        # kept[i] == writes[i] up to the first write left out, and greater after it.
        first, last = 0, min(len(kept), hi)
        while first < last:
            mid = (first + last) // 2
            if kept[mid] == self._writes[mid]:
                first = mid + 1
            else:
                last = mid
        return self._writes[first]

    def at(self, p: int) -> tuple[list[Extent], list[int]]:
        """Copies of the ranges of the prefix [0, p)."""
        if p < self._p:
            self._p, self._spans, self._starts = 0, [], []
        for entry in self.wlog.entries[self._p : p]:
            if entry.is_write:
                _apply(self._spans, self._starts, entry, entry.nr_sectors, self.wlog.sector_size)
        self._p = p
        return list(self._spans), list(self._starts)


_PREFIXES: dict[Path, _PrefixCache] = {}


def _apply(
    spans: list[Extent], starts: list[int], entry: LogEntry, sectors: int, size: int
) -> None:
    """Cut the range one write covers into the sorted, disjoint `spans`."""
    lo, hi = entry.sector * size, (entry.sector + sectors) * size
    new = Extent(lo, hi - lo, None if entry.is_discard else entry.data_offset)
    first = bisect.bisect_right(starts, lo) - 1
    if first < 0 or spans[first].disk_offset + spans[first].length <= lo:
        first += 1
    last = first
    pieces: list[Extent] = []
    while last < len(spans) and spans[last].disk_offset < hi:
        old = spans[last]
        old_end = old.disk_offset + old.length
        if old.disk_offset < lo:  # the part of it before this write survives
            pieces.append(Extent(old.disk_offset, lo - old.disk_offset, old.log_offset))
        if old_end > hi:  # and the part after it
            moved = None if old.log_offset is None else old.log_offset + hi - old.disk_offset
            pieces.append(Extent(hi, old_end - hi, moved))
        last += 1
    before = [x for x in pieces if x.disk_offset < lo]
    after = [x for x in pieces if x.disk_offset >= hi]
    spans[first:last] = [*before, new, *after]
    starts[first:last] = [x.disk_offset for x in (*before, new, *after)]


def _merged(spans: list[Extent]) -> list[Extent]:
    result: list[Extent] = []
    for ext in spans:
        if result:
            prev = result[-1]
            contiguous = prev.disk_offset + prev.length == ext.disk_offset
            source = -1 if ext.log_offset is None else ext.log_offset
            if contiguous and _follows(prev, source, prev.length):
                result[-1] = Extent(prev.disk_offset, prev.length + ext.length, prev.log_offset)
                continue
        result.append(ext)
    return result


def fingerprint(
    base_image: Path | str,
    wlog: WriteLog,
    state: CrashState,
    regions: Sequence[tuple[int, int]],
) -> str:
    """SHA-256 (hex) of the bytes ``regions`` ((offset, length) pairs) hold in ``state``.

    Computed from the base image and the log alone: nothing is written.
    """
    changes = extents(wlog, state)
    digest = hashlib.sha256()
    with Path(base_image).open("rb") as base, wlog.path.open("rb") as logf:
        for start, length in regions:
            base.seek(start)
            data = bytearray(base.read(length))
            if len(data) < length:
                raise HarnessConfigError(
                    f"{base_image}: region {start}+{length} runs past the end of the image",
                    "give regions inside the disk",
                )
            for ext in _overlapping(changes, start, start + length):
                lo = max(ext.disk_offset, start)
                hi = min(ext.disk_offset + ext.length, start + length)
                if ext.log_offset is None:
                    piece = bytes(hi - lo)
                else:
                    logf.seek(ext.log_offset + lo - ext.disk_offset)
                    piece = logf.read(hi - lo)
                data[lo - start : hi - start] = piece
            digest.update(f"{start}+{length}:".encode())
            digest.update(data)
    return digest.hexdigest()


def _overlapping(changes: list[Extent], start: int, end: int) -> Iterable[Extent]:
    return (e for e in changes if e.disk_offset < end and e.disk_offset + e.length > start)


def _follows(last: Extent, source: int, size: int) -> bool:
    if last.log_offset is None:
        return source < 0
    return source >= 0 and last.log_offset + last.length == source


def _check_index(wlog: WriteLog, index: int) -> None:
    if not 0 <= index <= len(wlog):
        raise HarnessConfigError(
            f"{wlog.path}: crash index {index} is past the end of the log "
            f"({len(wlog)} entries, so 0..{len(wlog)})",
            "pick an index between 0 and the number of entries",
        )


def _names(subset: Iterable[int]) -> str:
    return "{" + ",".join(f"#{i}" for i in sorted(subset)) + "}"


def _unique(states: list[CrashState]) -> list[CrashState]:
    seen: set[tuple[frozenset[int], TornWrite | None]] = set()
    result = []
    for state in states:
        key = (state.kept, state.torn)
        if key not in seen:
            seen.add(key)
            result.append(state)
    return result
