"""The crash-point sweep: power lost at every interesting write of one update.

From a `Recording` (one update, every write logged), pick crash points —
every flush, just before and after every write into the env files, and a
seeded sample between — and for each, the crash states of both models
(`ordered`, `volatile-cache`). States that leave the same bytes in what the
next boots can read (the boot partition with the env copies, the slot the
env selects, the data partition) are one experiment: one member per class
is booted (a qcow2 overlay over the recording's base disk), left to settle
with no human action, and judged against the invariant:

- it reaches a shell within bootlimit + 2 boots;
- the running slot holds exactly v1 or exactly v2 (sha256 on the host);
- it ends committed on v2, or on v1, with upgrade_available=0, and at least
  one env copy is valid;
- files synced to /data before the update are intact;
- every boot keeps the bootloader contract (the oracle).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from harness.bootloaders import Bootloader
from harness.diskimage import partition_sha256
from harness.errors import HarnessError
from harness.faults.crashdisk import materialize
from harness.faults.crashstate import CrashState
from harness.faults.disklayout import DiskLayout, names_from_manifest, regions_from_manifest
from harness.faults.recording import Recording, record_update_cycle
from harness.faults.sweep_plan import (
    QUICK_STATES,
    Classifier,
    Experiment,
    Mode,
    Point,
    crash_points,
    states_for,
)
from harness.faults.writelog import WriteLog
from harness.images import ImageSet
from harness.live import LiveTarget, live_target
from harness.oracle import ContractViolation
from harness.shell import Shell
from harness.target import TargetSpec

log = logging.getLogger(__name__)


__all__ = [
    "QUICK_STATES",
    "Classifier",
    "Experiment",
    "Mode",
    "Outcome",
    "Point",
    "SweepProgress",
    "SweepReport",
    "SweepRun",
    "boot_state",
    "crash_points",
    "format_report",
    "run_sweep",
    "states_for",
    "sweep_target",
]


@dataclass(frozen=True)
class Outcome:
    """What the booted representative of an experiment did, and the verdict."""

    boots: int
    final_slot: str | None
    final_version: str | None
    verdict: str  # "ok" or the broken invariant
    note: str = ""  # what else happened on the way (e.g. the env was lost)
    detail: str = ""  # the whole error of a failed experiment, serial tail included

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass(frozen=True)
class SweepReport:
    rows: tuple[tuple[Point, CrashState, str, Outcome], ...]  # point, state, class key, outcome
    experiments: int
    boots: int
    seconds: float

    @property
    def states(self) -> int:
        return len(self.rows)

    @property
    def failures(self) -> list[tuple[Point, CrashState, str, Outcome]]:
        return [row for row in self.rows if not row[3].ok]

    @property
    def states_per_minute(self) -> float:
        return self.states / self.seconds * 60 if self.seconds > 0 else 0.0


@dataclass
class SweepProgress:
    """The line a person follows while a sweep runs: how far, how long so far,
    about how long to go, and how many crash states broke the invariant."""

    total: int
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    broke: int = 0

    def step(self, what: str, outcome: Outcome, states: int) -> str:
        """Count one finished experiment and return its progress line."""
        self.done += 1
        self.broke += 0 if outcome.ok else states
        elapsed = self.clock() - self.started
        left = elapsed / self.done * (self.total - self.done)
        return (
            f"[{self.done}/{self.total}] {100 * self.done // max(self.total, 1)}% "
            f"{_mmss(elapsed)} elapsed, ~{_mmss(left)} left, {self.broke} broke | "
            f"{what}: {outcome.verdict} ({outcome.boots} boots, {states} states)"
        )


def _mmss(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def boot_state(
    recording: Recording,
    spec: TargetSpec,
    image: ImageSet,
    bootloader: Bootloader,
    state: CrashState,
    workdir: Path,
    *,
    accel: str | None = None,
    bootlimit: int = 1,
) -> Outcome:
    """Boot one crash state, let it settle, and judge it against the invariant."""
    workdir.mkdir(parents=True, exist_ok=True)
    wlog = WriteLog.open(recording.log)
    # A raw copy, not a qcow2 overlay: the oracle reads the env and the slots
    # straight from the disk between boots, which it cannot do in a qcow2.
    disk = materialize(recording.base, wlog, state, workdir / "crash.img", method="copy").path
    try:
        with live_target(spec, image, workdir / "live", bootloader, accel=accel, disk=disk) as live:
            try:
                records = live.strategy.power_on(max_boots=bootlimit + 2)
            except ContractViolation as err:
                first = str(err).splitlines()[0]
                boots = len(live.watcher.history)
                return Outcome(boots, None, None, f"contract: {first}", detail=str(err))
            except HarnessError as err:
                first = err.cause.splitlines()[0]
                boots = len(live.watcher.history)
                return Outcome(boots, None, None, f"no shell: {first}", detail=str(err))
            last = records[-1]
            verdict = _judge_settled(recording, spec, bootloader, live, state, last.running_slot)
            lost = any(
                b.env_before is not None and b.env_before.detail.get("copy") == "none"
                for b in live.watcher.history
            )
            note = "no valid env: the bootloader's default env" if lost else ""
            return Outcome(
                len(live.watcher.history), last.running_slot, last.version, verdict, note
            )
    finally:
        disk.unlink(missing_ok=True)


def _judge_settled(
    recording: Recording,
    spec: TargetSpec,
    bootloader: Bootloader,
    live: LiveTarget,
    state: CrashState,
    slot: str | None,
) -> str:
    shell = Shell(live.target.get_driver("ShellDriver"))
    try:
        env = bootloader.env_from_device(shell)
    except HarnessError as err:
        return f"no valid env copy: {err.cause}"
    if env.upgrade_available:
        return f"settled with upgrade_available=1 on slot {slot}"
    if slot is None or slot not in spec.slots:
        return f"runs an unknown slot {slot}"
    if live.disk is None:
        return "no disk to check the slot on"
    content = partition_sha256(live.disk, spec.slots[slot], recording.payload.size)
    if content not in (recording.v1_sha256, recording.payload.sha256):
        return f"slot {slot} holds neither v1 nor v2 (sha256 {content[:12]}…)"
    if state.index >= recording.data_synced_at:
        for path, digest in recording.data_files.items():
            code, file_out = shell.exec(f"sha256sum {path}")
            if code != 0 or file_out.split()[0] != digest:
                return f"data file {path}, synced before the update, lost or changed"
    return "ok"


def run_sweep(
    recording: Recording,
    spec: TargetSpec,
    image: ImageSet,
    bootloader: Bootloader,
    mode: Mode,
    workdir: Path,
    *,
    seed: int = 0,
    workers: int = 2,
    accel: str | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> SweepReport:
    """Plan, class and boot the crash states of `recording`; `workers` VMs at once."""
    started = time.monotonic()
    wlog = WriteLog.open(recording.log)
    layout = DiskLayout.read(
        recording.base, names_from_manifest(image.manifest), regions_from_manifest(image.manifest)
    )
    points = crash_points(wlog, layout, mode, seed=seed, env_files=spec.env.copy_names)
    states = states_for(wlog, points, mode, seed)
    experiments = Classifier(recording, spec, bootloader, layout).experiments(states)
    progress(
        f"sweep ({mode}): {len(wlog)} log entries, {len(points)} crash points, "
        f"{len(states)} crash states in {len(experiments)} experiments"
    )
    jobs = [(n, e, e.states[0][1]) for n, e in enumerate(experiments)]
    results: list[tuple[Experiment, Outcome]] = []
    tracker = SweepProgress(len(experiments))
    # Processes, not threads: labgrid keeps its step stack in one global.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context) as pool:
        futures = {
            pool.submit(
                boot_state,
                recording,
                spec,
                image,
                bootloader,
                state,
                workdir / f"exp-{number:03d}",
                accel=accel,
            ): experiment
            for number, experiment, state in jobs
        }
        for future in as_completed(futures):
            experiment = futures[future]
            outcome = future.result()
            results.append((experiment, outcome))
            progress(tracker.step(experiment.states[0][1].label, outcome, len(experiment.states)))
    rows = tuple(
        (point, state, experiment.key, outcome)
        for experiment, outcome in results
        for point, state in experiment.states
    )
    rows = tuple(sorted(rows, key=lambda r: (r[1].index, r[1].label)))
    return SweepReport(
        rows, len(experiments), sum(o.boots for _, o in results), time.monotonic() - started
    )


def format_report(report: SweepReport, recording: Recording) -> list[str]:
    """The sweep as a table a person reads: crash point → what was being
    written → crash model → boots → final slot → verdict."""
    lines = [
        f"{'k':>5}  {'phase':<22} {'writing':<34} {'crash state':<44} {'boots':>5} "
        f"{'slot':>4}  verdict"
    ]
    for point, state, key, outcome in report.rows:
        label = state.label.split(" ", 1)[1] if " " in state.label else state.label
        lines.append(
            f"{point.index:>5}  {recording.phase_of(point.index)[:22]:<22} {point.what[:34]:<34} "
            f"{label[:44]:<44} {outcome.boots:>5} {outcome.final_slot or '-':>4}  "
            f"{outcome.verdict}{f' ({outcome.note})' if outcome.note else ''} [{key[:6]}]"
        )
    lines.append(
        f"{report.states} crash states judged in {report.experiments} experiments "
        f"({report.boots} boots), {len(report.failures)} broke the invariant; "
        f"{report.seconds:.0f} s, {report.states_per_minute:.1f} crash states per minute"
    )
    return lines


@dataclass(frozen=True)
class SweepRun:
    """A whole sweep: the recording, the report, and the table a person reads."""

    recording: Recording
    report: SweepReport
    table: tuple[str, ...]

    def write(self, directory: Path) -> Path:
        """Write the table and the rows as JSON into `directory`; return the table file."""
        directory.mkdir(parents=True, exist_ok=True)
        rows = [
            {
                "index": point.index,
                "phase": self.recording.phase_of(point.index),
                "point": point.why,
                "writing": point.what,
                "model": state.model,
                "state": state.label,
                "class": key,
                "boots": outcome.boots,
                "final_slot": outcome.final_slot,
                "final_version": outcome.final_version,
                "verdict": outcome.verdict,
                "note": outcome.note,
                "detail": outcome.detail,
            }
            for point, state, key, outcome in self.report.rows
        ]
        (directory / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
        table = directory / "sweep.txt"
        table.write_text("\n".join(self.table) + "\n")
        return table


def sweep_target(
    spec: TargetSpec,
    image: ImageSet,
    bootloader: Bootloader,
    mode: Mode,
    workdir: Path,
    *,
    seed: int = 0,
    workers: int = 2,
    accel: str | None = None,
    progress: Callable[[str], None] = lambda line: None,
    recording: Recording | None = None,
    start_slot: str = "A",
) -> SweepRun:
    """Record one update of `spec` from `start_slot` (unless given a recording)
    and sweep its crash points."""
    if recording is None:
        progress(f"recording an update of {spec.name} from slot {start_slot}, every write logged")
        recording = record_update_cycle(
            spec, image, bootloader, workdir / "recording", accel=accel, start_slot=start_slot
        )
    progress(
        f"recording: {len(WriteLog.open(recording.log))} writes and flushes over "
        f"{recording.boots} boots ({recording.seconds:.1f} s)"
    )
    report = run_sweep(
        recording,
        spec,
        image,
        bootloader,
        mode,
        workdir / "states",
        seed=seed,
        workers=workers,
        accel=accel,
        progress=progress,
    )
    return SweepRun(recording, report, tuple(format_report(report, recording)))
