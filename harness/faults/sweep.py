"""The crash-point sweep: power lost at every interesting write of one update.

From a `Recording` (one update, every write logged), pick crash points —
every flush, just before and after every write into the env files, and a
seeded sample between — and for each, the crash states of both models
(`ordered`, `volatile-cache`). States that leave the same bytes in what the
next boots can read (the boot partition with the env copies, the slot the
env selects, the data partition) are one experiment: one member per class
is booted (a raw copy of the crash state), left to settle with no human
action, and judged against the invariant, each part named in the verdict:

- it reaches a shell within bootlimit + 2 boots ("no shell"), and every
  boot keeps the bootloader contract (the oracle, "contract");
- env: at least one env copy is valid and it ends settled (the contract's `settled`);
- slot: the running slot holds exactly the release before the update or
  exactly the update;
- data: files synced to /data before the update are intact (checked in
  every class with a member cut after the sync; the data partition's bytes
  are part of the class, so each distinct data partition is checked);
- client: the update client agrees (`ClientBelief`): it reports the running
  slot's release as installed, waits for a commit exactly when the env
  does (never, once settled), and its next command runs clean.
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
from harness.clients import ClientCheck, client_for
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
    crash_models,
    crash_points,
    states_for,
)
from harness.faults.writelog import WriteLog
from harness.images import ImageSet
from harness.live import LiveTarget, live_target
from harness.machines.qemu import die_with_parent
from harness.oracle import ContractViolation
from harness.shell import Shell
from harness.target import TargetSpec

log = logging.getLogger(__name__)


__all__ = [
    "PARTS",
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
    "checks_data",
    "crash_models",
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
    verdict: str  # "ok", or "<part>: why" for the part of the invariant that broke
    note: str = ""  # what else happened on the way (e.g. the env was lost)
    detail: str = ""  # the whole error of a failed experiment, serial tail included
    data_checked: bool = False  # the data files were checked in this boot

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    @property
    def part(self) -> str:
        """The part of the invariant that broke (one of PARTS), or "" when ok."""
        return "" if self.ok else self.verdict.split(":", 1)[0]


# The parts of the invariant, in the order a settled state is judged.
PARTS = ("no shell", "contract", "env", "slot", "data", "client")


@dataclass(frozen=True)
class SweepReport:
    rows: tuple[tuple[Point, CrashState, str, Outcome], ...]  # point, state, class key, outcome
    experiments: int
    boots: int  # boots made: every boot of every booted experiment
    seconds: float

    @property
    def states(self) -> int:
        """Crash states judged (each one by its class's booted representative)."""
        return len(self.rows)

    @property
    def failures(self) -> list[tuple[Point, CrashState, str, Outcome]]:
        return [row for row in self.rows if not row[3].ok]

    @property
    def states_per_minute(self) -> float:
        return self.states / self.seconds * 60 if self.seconds > 0 else 0.0

    @property
    def boots_per_minute(self) -> float:
        return self.boots / self.seconds * 60 if self.seconds > 0 else 0.0

    @property
    def broken_parts(self) -> dict[str, int]:
        """Crash states that broke the invariant, by the part that broke."""
        counts: dict[str, int] = {}
        for _, _, _, outcome in self.failures:
            counts[outcome.part] = counts.get(outcome.part, 0) + 1
        return counts

    def counts_line(self) -> str:
        """The two numbers a sweep is measured by, each with its rate."""
        return (
            f"{self.states} crash states judged ({self.states_per_minute:.1f}/min), "
            f"{self.boots} boots ({self.boots_per_minute:.1f}/min) in {self.seconds:.0f} s"
        )

    def summary(self) -> dict[str, object]:
        return {
            "states_judged": self.states,
            "states_per_minute": round(self.states_per_minute, 2),
            "boots": self.boots,
            "boots_per_minute": round(self.boots_per_minute, 2),
            "experiments": self.experiments,
            "seconds": round(self.seconds, 1),
            "broke": len(self.failures),
            "broke_by_part": self.broken_parts,
        }


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
    check_data: bool | None = None,
) -> Outcome:
    """Boot one crash state, let it settle, and judge it against the invariant.
    `check_data`: check the data files (default: when the state was cut after
    they were synced; the sweep asks for it when any member of the class was)."""
    if check_data is None:
        check_data = state.index >= recording.data_synced_at
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
            verdict, detail = _judge_settled(
                recording, spec, bootloader, live, last.running_slot, check_data
            )
            lost = any(
                b.env_before is not None and b.env_before.detail.get("copy") == "none"
                for b in live.watcher.history
            )
            note = "no valid env: the bootloader's default env" if lost else ""
            return Outcome(
                len(live.watcher.history),
                last.running_slot,
                last.version,
                verdict,
                note,
                detail,
                data_checked=check_data,
            )
    finally:
        disk.unlink(missing_ok=True)


def _judge_settled(
    recording: Recording,
    spec: TargetSpec,
    bootloader: Bootloader,
    live: LiveTarget,
    slot: str | None,
    check_data: bool,
) -> tuple[str, str]:
    """The verdict on a settled device ("ok" or "<part>: why") and its evidence."""
    shell = Shell(live.target.get_driver("ShellDriver"), pace=live.pace)
    try:
        env = bootloader.env_from_device(shell)
    except HarnessError as err:
        return f"env: no valid env copy: {err.cause}", ""
    unsettled = bootloader.settled(env, spec.slots)
    if unsettled is not None:
        return f"env: ends unsettled on slot {slot}: {unsettled}", ""
    if slot is None or slot not in spec.slots:
        return f"slot: runs an unknown slot {slot}", ""
    if live.disk is None:
        return "slot: no disk to check the slot on", ""
    content = partition_sha256(live.disk, spec.slots[slot], recording.payload.size)
    if content not in (recording.before_sha256, recording.payload.sha256):
        return (
            f"slot: slot {slot} holds neither {recording.before} nor "
            f"{recording.payload.name} (sha256 {content[:12]}…)"
        ), ""
    if check_data:
        for path, digest in recording.data_files.items():
            code, file_out = shell.exec(f"sha256sum {path}")
            if code != 0 or file_out.split()[0] != digest:
                # Why: the file's own answer, whether /data is mounted, the kernel's last words.
                _, seen = shell.exec("grep ' /data ' /proc/mounts; dmesg | tail -n 12")
                evidence = f"$ sha256sum {path} (exit {code})\n{file_out.strip()}\n{seen.strip()}"
                return f"data: file {path}, synced before the update, lost or changed", evidence
    # Last: the client's probe may be its own next command (a commit).
    client = client_for(spec.update_client)
    check = ClientCheck(client.believes(shell), client.slot_release(shell))
    evidence = "\n".join(
        f"$ {r.command} (exit {r.exit_code})\n{r.output.strip()}" for r in check.belief.evidence
    )
    disagreement = check.disagreement(unsettled is not None)
    return (disagreement or "ok"), (evidence if disagreement else "")


def checks_data(experiment: Experiment, data_synced_at: int) -> bool:
    """Whether the class's booted representative checks the data files: when
    any member was cut after they were synced, whichever member is booted. The
    class shares the data partition's bytes (`Classifier.key`), so that one
    check holds for each member, and each distinct data partition gets its own."""
    return any(state.index >= data_synced_at for _, state in experiment.states)


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
    points = crash_points(
        wlog, layout, mode, seed=seed, env_files=spec.env.copy_names, phases=recording.phases
    )
    models = crash_models(spec)
    states = states_for(wlog, points, mode, seed, models)
    experiments = Classifier(recording, spec, bootloader, layout).experiments(states)
    progress(
        f"sweep ({mode}): {len(wlog)} log entries, {len(points)} crash points, "
        f"{len(states)} crash states in {len(experiments)} experiments "
        f"(models: {', '.join(models)})"
    )
    jobs = [
        (n, e, e.states[0][1], checks_data(e, recording.data_synced_at))
        for n, e in enumerate(experiments)
    ]
    results: list[tuple[Experiment, Outcome]] = []
    tracker = SweepProgress(len(experiments))
    # Processes, not threads: labgrid keeps its step stack in one global.
    context = multiprocessing.get_context("spawn")
    # Each worker dies with this process (its QEMU dies with the worker), and an
    # interrupted sweep ends the workers now rather than after their boots.
    pool = ProcessPoolExecutor(
        max_workers=max(1, workers), mp_context=context, initializer=die_with_parent
    )
    try:
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
                check_data=check_data,
            ): experiment
            for number, experiment, state, check_data in jobs
        }
        for future in as_completed(futures):
            experiment = futures[future]
            outcome = future.result()
            results.append((experiment, outcome))
            progress(tracker.step(experiment.states[0][1].label, outcome, len(experiment.states)))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for child in multiprocessing.active_children():
            child.terminate()
        raise
    pool.shutdown()
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
    written → crash model → boots → final slot → the part of the invariant
    that broke (slot, env, data, client; "-" when none) → verdict."""
    lines = [
        f"{'k':>5}  {'phase':<22} {'writing':<34} {'crash state':<44} {'boots':>5} "
        f"{'slot':>4}  {'broke':<8} verdict"
    ]
    for point, state, key, outcome in report.rows:
        label = state.label.split(" ", 1)[1] if " " in state.label else state.label
        lines.append(
            f"{point.index:>5}  {recording.phase_of(point.index)[:22]:<22} {point.what[:34]:<34} "
            f"{label[:44]:<44} {outcome.boots:>5} {outcome.final_slot or '-':>4}  "
            f"{outcome.part or '-':<8} "
            f"{outcome.verdict}{f' ({outcome.note})' if outcome.note else ''} [{key[:6]}]"
        )
    parts = ", ".join(f"{part}: {n}" for part, n in sorted(report.broken_parts.items()))
    lines.append(
        f"{recording.payload.name} over a committed {recording.before}: "
        f"{report.counts_line()}; {report.experiments} experiments; "
        f"{len(report.failures)} states broke the invariant" + (f" ({parts})" if parts else "")
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
                "broke": outcome.part,
                "verdict": outcome.verdict,
                "note": outcome.note,
                "detail": outcome.detail,
                "data_checked": outcome.data_checked,
            }
            for point, state, key, outcome in self.report.rows
        ]
        body = {
            "update": self.recording.payload.name,
            "committed_before": self.recording.before,
            **self.report.summary(),
            "rows": rows,
        }
        (directory / "sweep.json").write_text(json.dumps(body, indent=2) + "\n")
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
