"""Evidence a person can read: per-boot serial logs, env snapshots, the boot
timeline (text, data and picture) and the Allure attachments of one test.

The boots are attached to the Allure report from the test body
(`attach_boots`, called by the plugin right after the test function
returns) so a reader finds them on the test, not under a fixture's
teardown; `finish` writes the final files at teardown and attaches only
what the body did not.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import allure

from harness.bootloaders import BootEnv
from harness.device.bootrecord import BootRecord
from harness.device.serial_log import SerialRecorder
from harness.errors import EnvironmentMissing, HarnessConfigError
from harness.judge.judgement import Judgement, tally
from harness.report.png import svg_to_png
from harness.report.timeline import TimelineData, timeline_svg

if TYPE_CHECKING:  # the faults package pulls in the live target (labgrid)
    from harness.faults.base import FaultProof

log = logging.getLogger(__name__)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "step"


@dataclass
class StepTime:
    """When a named step began and ended (seconds since the test began)."""

    name: str
    begin: float
    end: float | None = None
    depth: int = 0


@dataclass
class Evidence:
    """The evidence folder of one test, and what goes into the Allure report.

    `fault_proofs` is set by the faults fixture, so the timeline can mark
    each fault where it landed before the proofs are written at teardown.
    """

    directory: Path
    snapshot_env: Callable[[str], None] | None = None
    started: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    title: str = ""
    fault_proofs: Callable[[], Sequence[FaultProof]] | None = None
    steps: list[StepTime] = field(default_factory=list)
    _env_count: int = 0
    _open_steps: int = 0
    finished: bool = False
    attached: bool = False

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def _now(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def event(self, what: str) -> None:
        """Add a line to the timeline, stamped with seconds since the test began."""
        at = time.monotonic() - self.started
        self.timeline.append((at, what))
        log.info("[%7.2f s] %s", at, what)

    def keep_file(self, path: Path) -> None:
        """Copy a file into the evidence folder, if it exists."""
        if path.is_file():
            shutil.copy2(path, self.directory / path.name)

    def record_env(self, label: str, env: BootEnv) -> Path:
        """Write an env snapshot as JSON and attach it to the report."""
        self._env_count += 1
        path = self.directory / f"env-{self._env_count:02d}-{safe_name(label)}.json"
        body = {
            "label": label,
            "source": env.source,
            "detail": dict(env.detail),
            "at_s": round(time.monotonic() - self.started, 3),
            "vars": env.as_dict(),
        }
        path.write_text(json.dumps(body, indent=2) + "\n")
        allure.attach(
            path.read_text(),
            name=f"env: {label} ({env.source})",
            attachment_type=allure.attachment_type.JSON,
        )
        self.event(
            f"env snapshot '{label}' from {env.source}: "
            + " ".join(
                f"{k}={env.vars[k]}"
                for k in ("mender_boot_part", "upgrade_available", "bootcount")
                if k in env.vars
            )
        )
        return path

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A named step: env snapshots before and after, a timeline entry, an Allure step."""
        if self.snapshot_env:
            self.snapshot_env(f"before {name}")
        self.event(f"begin {name}")
        step = StepTime(name, self._now(), depth=self._open_steps)
        self.steps.append(step)
        self._open_steps += 1
        try:
            with allure.step(name):
                yield
        finally:
            self._open_steps -= 1
            step.end = self._now()
        self.event(f"end {name}")
        if self.snapshot_env:
            self.snapshot_env(f"after {name}")

    def attach_boots(self, recorder: SerialRecorder | None, boots: Sequence[BootRecord]) -> None:
        """Write the boot evidence and attach it to the report now (from the
        test body); `finish` at teardown then only rewrites the files."""
        self._write_quietly(recorder, boots, attach=True)
        self.attached = True

    def finish(
        self, recorder: SerialRecorder | None, boots: Sequence[BootRecord], *, png: bool = True
    ) -> None:
        """Write serial logs, boots.json, events.json and the timeline (text,
        SVG, PNG); attach them unless the test body already did. Safe on
        failure paths: a folder that cannot take them (a full disk) is one
        warning, not a second error on top of the test's own result. Without
        `png` (an interrupted run, which should end fast: loading the renderer
        alone takes a second on a busy host), the SVG is the only picture."""
        self.finished = True
        self._write_quietly(recorder, boots, attach=not self.attached, png=png)

    def _write_quietly(
        self,
        recorder: SerialRecorder | None,
        boots: Sequence[BootRecord],
        *,
        attach: bool,
        png: bool = True,
    ) -> None:
        try:
            self._write_all(recorder, boots, attach, png)
        except OSError as err:
            warnings.warn(
                f"ab-harness: the evidence of this test could not be written to "
                f"{self.directory}: {err.strerror or err} — fix: free space there, or choose "
                "another folder with --ab-results",
                stacklevel=3,
            )

    def _write_all(
        self, recorder: SerialRecorder | None, boots: Sequence[BootRecord], attach: bool, png: bool
    ) -> None:
        if recorder is not None:
            for path in recorder.write(self.directory):
                if attach and path.name.startswith("boot-"):
                    allure.attach.file(  # type: ignore[no-untyped-call]
                        str(path), name=path.stem, attachment_type=allure.attachment_type.TEXT
                    )
        facts = [boot_facts(b, self.started) for b in boots]
        proofs = [json.loads(p.as_json()) for p in self.fault_proofs()] if self.fault_proofs else []
        steps = [asdict(s) for s in self.steps]
        ended = self._now()
        written = {
            "boots.json": json.dumps(facts, indent=2),
            "events.json": json.dumps(
                {
                    "test": self.title or self.directory.name,
                    "ended_s": ended,
                    "steps": steps,
                    "events": [{"at_s": round(at, 3), "what": what} for at, what in self.timeline],
                },
                indent=2,
            ),
            "timeline.txt": "\n".join(
                [f"{at:8.2f} s  {what}" for at, what in self.timeline]
                + ["", "boots:"]
                + [format_boot(b, self.started) for b in boots]
                + (["", f"oracle: {oracle_line(boots)}"] if _judged(boots) else [])
            )
            + "\n",
        }
        data = TimelineData.from_facts(
            self.title or self.directory.name, facts, proofs, steps, ended
        )
        svg = timeline_svg(data)
        written["timeline.svg"] = svg
        for name, text in written.items():
            (self.directory / name).write_text(text)
        picture = self._png(svg) if png else None
        if not attach:
            return
        allure.attach(
            written["boots.json"], name="boots", attachment_type=allure.attachment_type.JSON
        )
        allure.attach(svg, name="boot timeline", attachment_type=allure.attachment_type.SVG)
        if picture is not None:
            allure.attach.file(  # type: ignore[no-untyped-call]
                str(picture), name="boot timeline (png)", attachment_type=allure.attachment_type.PNG
            )
        allure.attach(
            written["timeline.txt"], name="timeline", attachment_type=allure.attachment_type.TEXT
        )

    def _png(self, svg: str) -> Path | None:
        try:
            return svg_to_png(svg, self.directory / "timeline.png")
        except EnvironmentMissing as err:
            log.warning("%s", err)
            return None


def boot_facts(boot: BootRecord, t0: float) -> dict[str, object]:
    """One boot as plain data: what the bootloader decided and saved, the env
    on the disk before it and right after the decision, and how it ended."""

    def env(value: BootEnv | None) -> dict[str, object] | None:
        if value is None:
            return None
        return {"detail": dict(value.detail), "vars": value.as_dict()}

    judgement = boot.judgement
    return {
        "index": boot.index,
        "started_s": round(boot.started_at - t0, 3),
        "bootloader": {
            "slot": boot.bootloader_slot,
            "bootcount": boot.bootcount,
            "upgrade_available": boot.upgrade_available,
            "saves": [{"why": s.why, "file": s.file, "flags": s.flags} for s in boot.saves],
            "printed": asdict(boot.line) if boot.line is not None else None,
            "handoff": boot.handoff,
        },
        "oracle": None
        if judgement is None
        else {
            "verdict": judgement.verdict,
            "reason": judgement.reason,
            "observed": asdict(judgement.decision) if judgement.decision is not None else None,
        },
        "reached_shell": boot.ready,
        "running_slot": boot.running_slot,
        "version": boot.version,
        "health": boot.health,
        "failure": boot.failure,
        "seconds_to_ready": boot.seconds_to_ready,
        "env_before": env(boot.env_before),
        "env_after_bootloader": env(boot.env_after),
        "env_after_read_at": boot.env_after_at,
    }


def oracle_line(boots: Sequence[BootRecord]) -> str:
    """The line "N boots judged, M could not be judged: #3 (reason)" over the boots
    the oracle was asked about."""
    judged = _judged(boots)
    if not judged:
        return "the oracle judged no boot" + (f" of {len(boots)}" if boots else "")
    return tally(judged).line()


def _judged(boots: Sequence[BootRecord]) -> list[Judgement]:
    return [b.judgement for b in boots if b.judgement is not None]


def check_results_folder(root: Path) -> None:
    """The evidence folder can be created and written: one clear line if not
    (before any test runs, instead of an OSError in every test's set-up and
    teardown)."""
    probe = root / ".ab-harness-write-test"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
    except OSError as err:
        raise HarnessConfigError(
            f"cannot write evidence to {root}: {err.strerror or err}",
            "free space there, or choose another folder with --ab-results / AB_RESULTS",
        ) from None


def format_boot(boot: BootRecord, t0: float) -> str:
    ready = (
        f"ready after {boot.seconds_to_ready:.1f} s"
        if boot.seconds_to_ready is not None
        else "never ready"
    )
    running = f"running {boot.running_slot} v{boot.version}; " if boot.ready else ""
    return (
        f"  boot #{boot.index} at {boot.started_at - t0:7.2f} s: bootloader chose "
        f"{boot.bootloader_slot} (bootcount={boot.bootcount}, upgrade_available="
        f"{boot.upgrade_available}); {running}"
        f"health={boot.health}; {ready}"
        + "".join(f"; saved {s.file} flags 0x{s.flags:x} ({s.why})" for s in boot.saves)
        + ("; KERNEL PANIC" if boot.panicked else "")
        + (f"; did not reach a shell: {boot.failure}" if boot.failure and not boot.ready else "")
        + (f"; oracle: {boot.judgement.describe()}" if boot.judgement is not None else "")
    )
