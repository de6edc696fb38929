"""Planning a crash-point sweep: which crash points, which crash states, and
which states are one experiment (they leave the same bytes in everything the
next boots can read: the boot partition with the env copies, the slot that
env selects, the data partition). `harness.crashsweep.sweep` boots and judges them.
"""

from __future__ import annotations

import hashlib
import logging
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.bootloaders import Bootloader
from harness.crashsweep.crashstate import MODELS, CrashState, Extent, Model, crash_states, extents
from harness.crashsweep.disklayout import DiskLayout
from harness.crashsweep.recording import Recording
from harness.crashsweep.writelog import WriteLog
from harness.envformat import EnvCorrupt
from harness.errors import HarnessConfigError
from harness.targets.target import TargetSpec

log = logging.getLogger(__name__)

Mode = Literal["quick", "full"]
QUICK_STATES = 10
# Quick mode's ceiling: the points that span the update come first, whatever
# QUICK_STATES says; a volatile-cache state is added beside them up to this.
QUICK_MAX_STATES = 16


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
    phases: Sequence[tuple[int, str]] = (),
) -> list[Point]:
    """Every flush point, every write into an env file (before and after it),
    the end of the log, and a seeded sample of the indices between. The env
    files are the target's (`env_files`), or any `*.env` when none are given.

    Quick mode keeps about QUICK_STATES of them, spanning the whole update:
    in every phase of the recording after the first (`phases`: (first log
    index, name); the first is the boot before the update), the state just
    after its first env write and just before and after its last one — the
    install's switch to the new slot, the trial boot's save, the commit —
    the end of the log (all of it durable, the client's last books
    included) and the middle of the install; then a spread of the rest."""
    entries = wlog.entries
    points: dict[int, Point] = {}

    def what(index: int) -> str:
        for entry in reversed(entries[: index + 1]):
            if entry.is_write:
                return layout.describe_range(entry.sector, entry.nr_sectors, wlog.sector_size)
        return "nothing written yet"

    env_writes: list[int] = []
    for entry in entries:
        if entry.is_write:
            touched = layout.describe_range(entry.sector, entry.nr_sectors, wlog.sector_size)
            if any(name in touched for name in env_files) or (not env_files and ".env" in touched):
                env_writes.append(entry.index)
                for k in (entry.index, entry.index + 1):
                    points.setdefault(k, Point(k, "env write", what(k)))
        if entry.is_flush:
            points.setdefault(entry.index + 1, Point(entry.index + 1, "flush", what(entry.index)))
    end = len(entries)
    points.setdefault(end, Point(end, "end", what(end)))
    rng = random.Random(f"sweep/{seed}")  # noqa: S311 - repeatable sample, not a secret
    between = [i for i in range(len(entries) + 1) if i not in points]
    for k in sorted(rng.sample(between, min(len(between), max(8, len(entries) // 10)))):
        points[k] = Point(k, "sample", what(k))
    if mode == "quick":
        for k in _spanning(env_writes, phases, end):
            points.setdefault(k, Point(k, "sample", what(k)))
    chosen = sorted(points.values(), key=lambda p: p.index)
    if mode == "quick":
        spanning = _spanning(env_writes, phases, end)
        picked = [points[k] for k in sorted(spanning)]
        env = [p for p in chosen if p.why == "env write" and p.index not in spanning]
        rest = [p for p in chosen if p.why != "env write" and p.index not in spanning]
        room = max(0, QUICK_STATES - len(picked))
        spread = env[:: max(1, -(-len(env) // max(1, room - 2)))][: max(0, room - 2)]
        step = max(1, len(rest) // 2)
        chosen = sorted(picked + spread + rest[::step][: room - len(spread)], key=lambda p: p.index)
    return chosen


def _spanning(env_writes: Sequence[int], phases: Sequence[tuple[int, str]], end: int) -> set[int]:
    """The crash points quick mode must keep (see `crash_points`)."""
    keep = {end}
    starts = [start for start, _ in phases[1:]] or [0]
    bounds = [*starts[1:], end + 1]
    for number, (start, stop) in enumerate(zip(starts, bounds, strict=True)):
        inside = [k for k in env_writes if start <= k < stop]
        if inside:
            keep |= {inside[0] + 1, inside[-1], inside[-1] + 1}
        if number == 0:  # the install: its middle, where the slot is half written
            first_env = inside[0] if inside else stop
            keep.add(min(end, start + (first_env - start) // 2))
    return {k for k in keep if 0 <= k <= end}


def crash_models(spec: TargetSpec) -> tuple[Model, ...]:
    """The crash models the target's medium admits. A disk with a write cache the
    OS flushes (virtio) can lose what it has not flushed: both models. An SD
    card takes no flush and QEMU writes each block through: a write is on the
    card when it completes, so only the ordered model applies (what a real
    card's controller does with power lost mid-write is not modelled)."""
    drivers = spec.labgrid.get("targets", {}).get("main", {}).get("drivers", {})
    if isinstance(drivers, list):
        drivers = {k: v for d in drivers for k, v in d.items()}
    qemu = drivers.get("ABQEMUDriver")
    if isinstance(qemu, dict) and qemu.get("disk_bus") == "sd":
        return ("ordered",)
    return MODELS


def states_for(
    wlog: WriteLog,
    points: Sequence[Point],
    mode: Mode,
    seed: int,
    models: Sequence[Model] = MODELS,
) -> list[tuple[Point, CrashState]]:
    """The crash states of each model at each point (quick: the ordered state
    of every point, then volatile-cache all-lost where it differs, up to
    QUICK_MAX_STATES, so no point of the plan is dropped)."""
    result: list[tuple[Point, CrashState]] = []
    for point in points:
        for model in models:
            states = crash_states(wlog, point.index, model, seed=seed, samples=2)
            if mode == "quick":
                states = states[:1]
            result += [(point, s) for s in states]
    if mode == "quick":
        seen: set[frozenset[int]] = set()
        unique = []
        for point, state in sorted(result, key=lambda r: r[1].model != "ordered"):
            if state.kept not in seen or state.torn is not None:
                seen.add(state.kept)
                unique.append((point, state))
        ordered = sum(1 for _, s in unique if s.model == "ordered")
        kept = unique[: max(ordered, QUICK_MAX_STATES)]
        result = sorted(kept, key=lambda r: (r[1].index, r[1].model))
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
        """Where the env lives: its copies at raw offsets of the disk or of a
        partition, or the partition holding its files (`with_table`: and, where a
        partition is read, everything before it, the MBR or a GPT's header and
        entries, read to find the partition)."""
        env = self._spec.env
        if env.at_offsets:
            base = self._parts[env.partition][0] if env.partition else 0
            copies = [(base + offset, env.size) for offset in env.offsets]
            return [(0, base), *copies] if with_table and base else copies
        start, size = self._parts[env.partition]
        return [(0, start), (start, size)] if with_table else [(start, size)]

    def selected_slot(self, state: CrashState, changes: Sequence[Extent]) -> str:
        """The slot the env in this state makes U-Boot pick (with no valid copy,
        the default env's)."""
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
            except HarnessConfigError as err:
                # A file system the cut left undecodable (a FAT chain half
                # updated): only the boot can say what the bootloader makes of
                # it. The slot here only groups states; each class is booted.
                log.info("crash state %s: env not readable on the host: %s", state.label, err)
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
