"""Evidence a person can read: per-boot serial logs, env snapshots, a boot
timeline, Allure attachments, and the one-screen summary of a run."""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import allure

from harness.boot import BootRecord
from harness.bootloaders import BootEnv
from harness.errors import HarnessConfigError
from harness.serial_log import SerialRecorder

log = logging.getLogger(__name__)


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "step"


@dataclass
class Evidence:
    """The evidence folder of one test, and what goes into the Allure report."""

    directory: Path
    snapshot_env: Callable[[str], None] | None = None
    started: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    _env_count: int = 0
    finished: bool = False

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

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
        with allure.step(name):
            yield
        self.event(f"end {name}")
        if self.snapshot_env:
            self.snapshot_env(f"after {name}")

    def finish(self, recorder: SerialRecorder | None, boots: Sequence[BootRecord]) -> None:
        """Write serial logs and the timeline; attach them. Safe on failure paths:
        a folder that cannot take them (a full disk) is one warning, not a
        second error on top of the test's own result."""
        self.finished = True
        try:
            self._write_all(recorder, boots)
        except OSError as err:
            warnings.warn(
                f"ab-harness: the evidence of this test could not be written to "
                f"{self.directory}: {err.strerror or err} — fix: free space there, or choose "
                "another folder with --ab-results",
                stacklevel=2,
            )

    def _write_all(self, recorder: SerialRecorder | None, boots: Sequence[BootRecord]) -> None:
        if recorder is not None:
            for path in recorder.write(self.directory):
                if path.name.startswith("boot-"):
                    allure.attach.file(  # type: ignore[no-untyped-call]
                        str(path), name=path.stem, attachment_type=allure.attachment_type.TEXT
                    )
        lines = [f"{at:8.2f} s  {what}" for at, what in self.timeline]
        lines += ["", "boots:"] + [format_boot(b, self.started) for b in boots]
        boots_json = self.directory / "boots.json"
        boots_json.write_text(json.dumps([boot_facts(b, self.started) for b in boots], indent=2))
        allure.attach(
            boots_json.read_text(), name="boots", attachment_type=allure.attachment_type.JSON
        )
        timeline = self.directory / "timeline.txt"
        timeline.write_text("\n".join(lines) + "\n")
        allure.attach(
            timeline.read_text(), name="timeline", attachment_type=allure.attachment_type.TEXT
        )


def boot_facts(boot: BootRecord, t0: float) -> dict[str, object]:
    """One boot as plain data: what the bootloader decided and saved, the env
    on the disk before it and right after the decision, and how it ended."""

    def env(value: BootEnv | None) -> dict[str, object] | None:
        if value is None:
            return None
        return {"detail": dict(value.detail), "vars": value.as_dict()}

    return {
        "index": boot.index,
        "started_s": round(boot.started_at - t0, 3),
        "bootloader": {
            "slot": boot.bootloader_slot,
            "bootcount": boot.bootcount,
            "upgrade_available": boot.upgrade_available,
            "saves": [{"why": s.why, "file": s.file, "flags": s.flags} for s in boot.saves],
        },
        "reached_shell": boot.ready,
        "running_slot": boot.running_slot,
        "version": boot.version,
        "health": boot.health,
        "failure": boot.failure,
        "seconds_to_ready": boot.seconds_to_ready,
        "env_before": env(boot.env_before),
        "env_after_bootloader": env(boot.env_after),
    }


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
    )


@dataclass(frozen=True)
class ScenarioSummary:
    """One row of the end-of-run summary."""

    scenario: str
    outcome: str
    boots: int
    seconds: float
    target: str = ""


def summary_table(rows: Sequence[ScenarioSummary], accel: str | None) -> list[str]:
    """The one-screen summary: scenario, outcome, boots, seconds."""
    if not rows:
        return []
    width = max(len("scenario"), *(len(r.scenario) for r in rows))
    lines = [f"{'scenario':<{width}}  {'outcome':<8} {'boots':>5} {'seconds':>8}"]
    lines += [f"{r.scenario:<{width}}  {r.outcome:<8} {r.boots:>5} {r.seconds:>8.1f}" for r in rows]
    total = sum(r.seconds for r in rows)
    passed = sum(r.outcome == "passed" for r in rows)
    lines.append(
        f"{passed}/{len(rows)} passed, {sum(r.boots for r in rows)} boots, {total:.1f} s"
        + (f", accelerator: {accel}" if accel else "")
    )
    return lines
