"""Planning a crash-point sweep: which crash points, which crash states, and
which states are one experiment (they leave the same bytes in everything the
next boots can read: the boot partition with the env copies, the slot that
env selects, the data partition). `harness.faults.sweep` boots and judges them.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.bootloaders import Bootloader
from harness.envformat import EnvCorrupt
from harness.faults.crashstate import MODELS, CrashState, Extent, crash_states, extents
from harness.faults.disklayout import DiskLayout
from harness.faults.recording import Recording
from harness.faults.writelog import WriteLog
from harness.target import TargetSpec

Mode = Literal["quick", "full"]
QUICK_STATES = 10


@dataclass(frozen=True)
class Point:
    """A crash point: power lost just before log entry `index`."""

    index: int
    why: str  # "flush", "env write", "sample"
    what: str  # what the entry at `index` (or the last before it) writes, in words


@dataclass(frozen=True)
class Experiment:
    """Crash states that leave the same readable bytes: booted once."""

    key: str
    states: tuple[tuple[Point, CrashState], ...]
    selected_slot: str


def crash_points(
    wlog: WriteLog,
    layout: DiskLayout,
    mode: Mode,
    *,
    seed: int = 0,
    env_files: Sequence[str] = (),
) -> list[Point]:
    """Every flush point, every write into an env file (before and after it),
    and a seeded sample of the indices between; quick mode keeps a spread
    of about QUICK_STATES of them, env writes first. The env files are the
    target's (`env_files`), or any `*.env` when none are given."""
    entries = wlog.entries
    points: dict[int, Point] = {}

    def what(index: int) -> str:
        for entry in reversed(entries[: index + 1]):
            if entry.is_write:
                return layout.describe_range(entry.sector, entry.nr_sectors, wlog.sector_size)
        return "nothing written yet"

    for entry in entries:
        if entry.is_write:
            touched = layout.describe_range(entry.sector, entry.nr_sectors, wlog.sector_size)
            if any(name in touched for name in env_files) or (not env_files and ".env" in touched):
                for k in (entry.index, entry.index + 1):
                    points.setdefault(k, Point(k, "env write", what(k)))
        if entry.is_flush:
            points.setdefault(entry.index + 1, Point(entry.index + 1, "flush", what(entry.index)))
    rng = random.Random(f"sweep/{seed}")  # noqa: S311 - repeatable sample, not a secret
    between = [i for i in range(len(entries) + 1) if i not in points]
    for k in sorted(rng.sample(between, min(len(between), max(8, len(entries) // 10)))):
        points[k] = Point(k, "sample", what(k))
    chosen = sorted(points.values(), key=lambda p: p.index)
    if mode == "quick":
        env = [p for p in chosen if p.why == "env write"]
        rest = [p for p in chosen if p.why != "env write"]
        step = max(1, len(rest) // 3)
        spread = env[:: max(1, -(-len(env) // (QUICK_STATES - 3)))]
        chosen = sorted(spread + rest[::step][:3], key=lambda p: p.index)
    return chosen


def states_for(
    wlog: WriteLog, points: Sequence[Point], mode: Mode, seed: int
) -> list[tuple[Point, CrashState]]:
    """The crash states of both models at each point (quick: ordered, plus
    volatile-cache all-lost where it differs)."""
    result: list[tuple[Point, CrashState]] = []
    for point in points:
        for model in MODELS:
            states = crash_states(wlog, point.index, model, seed=seed, samples=2)
            if mode == "quick":
                states = states[:1]
            result += [(point, s) for s in states]
    if mode == "quick":
        seen: set[frozenset[int]] = set()
        unique = []
        for point, state in result:
            if state.kept not in seen or state.torn is not None:
                seen.add(state.kept)
                unique.append((point, state))
        result = unique[:QUICK_STATES]
    return result


def _region_bytes(
    base: Path, wlog: WriteLog, changes: Sequence[Extent], start: int, length: int
) -> bytes:
    """What `length` bytes at `start` hold once `changes` (a state's extents) are applied."""
    with base.open("rb") as f, wlog.path.open("rb") as logf:
        f.seek(start)
        data = bytearray(f.read(length))
        for ext in changes:
            lo, hi = max(ext.disk_offset, start), min(ext.disk_offset + ext.length, start + length)
            if lo >= hi:
                continue
            if ext.log_offset is None:
                data[lo - start : hi - start] = bytes(hi - lo)
            else:
                logf.seek(ext.log_offset + lo - ext.disk_offset)
                data[lo - start : hi - start] = logf.read(hi - lo)
    return bytes(data)


class Classifier:
    """Groups crash states by the bytes the next boots can read."""

    def __init__(
        self, recording: Recording, spec: TargetSpec, bootloader: Bootloader, layout: DiskLayout
    ) -> None:
        self._rec = recording
        self._spec = spec
        self._bootloader = bootloader
        self._wlog = WriteLog.open(recording.log)
        self._parts = {p.number: (p.start, p.size) for p in layout.partitions}
        self._size = recording.base.stat().st_size

    def _env_regions(self, *, with_table: bool = False) -> list[tuple[int, int]]:
        """Where the env lives: its copies at raw offsets of the disk, or the
        partition holding its files (`with_table`: and everything before it,
        the MBR or a GPT's header and entries, read to find the partition)."""
        env = self._spec.env
        if env.at_offsets:
            return [(offset, env.size) for offset in env.offsets]
        start, size = self._parts[env.partition]
        return [(0, start), (start, size)] if with_table else [(start, size)]

    def selected_slot(self, state: CrashState, changes: Sequence[Extent]) -> str:
        """The slot the env in this state makes U-Boot pick (A when no copy is valid)."""
        with tempfile.TemporaryDirectory(prefix="ab-sweep-") as tmp:
            disk = Path(tmp) / "env-only.img"
            with disk.open("wb") as f:
                f.truncate(self._size)
                for start, length in self._env_regions(with_table=True):
                    f.seek(start)
                    f.write(_region_bytes(self._rec.base, self._wlog, changes, start, length))
            try:
                env = self._bootloader.env_from_image(disk)
            except EnvCorrupt:
                return "A"
        part = env.boot_part or 0
        return next((s for s, n in self._spec.slots.items() if n == part), "A")

    def key(self, changes: Sequence[Extent], slot: str) -> str:
        regions = [
            *self._env_regions(),
            self._parts[self._spec.slots[slot]],
            *(
                v
                for n, v in self._parts.items()
                if n not in (self._spec.env.partition, *self._spec.slots.values())
            ),
        ]
        return self._digest(changes, regions, slot)

    def _digest(
        self, changes: Sequence[Extent], regions: Sequence[tuple[int, int]], salt: str
    ) -> str:
        """A hash of what `changes` leave in `regions` (offsets and bytes)."""
        digest = hashlib.sha256(salt.encode())
        for ext in changes:
            for start, length in regions:
                lo = max(ext.disk_offset, start)
                hi = min(ext.disk_offset + ext.length, start + length)
                if lo < hi:
                    digest.update(f"{lo}+{hi - lo}:".encode())
                    digest.update(_region_bytes(self._rec.base, self._wlog, [ext], lo, hi - lo))
        return digest.hexdigest()[:16]

    def experiments(self, states: Sequence[tuple[Point, CrashState]]) -> list[Experiment]:
        groups: dict[str, list[tuple[Point, CrashState]]] = {}
        slots: dict[str, str] = {}
        # The slot U-Boot picks depends on the env's bytes only: states
        # that leave it alike (all the install's writes into a slot) read it once.
        boot = self._env_regions(with_table=True)
        picked: dict[str, str] = {}
        for point, state in states:
            changes = extents(self._wlog, state)
            seen = self._digest(changes, boot, "boot")
            if seen not in picked:
                picked[seen] = self.selected_slot(state, changes)
            slot = picked[seen]
            key = self.key(changes, slot)
            groups.setdefault(key, []).append((point, state))
            slots[key] = slot
        return [Experiment(k, tuple(v), slots[k]) for k, v in groups.items()]
