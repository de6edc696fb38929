"""The tests of one run as data (`run.json`), collected from pytest's reports.

Collected where every report arrives (the pytest-xdist controller, or the
single process), so one file holds every test of the run whatever worker
ran it. The HTML report and the Allure environment are made from it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ORDER = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


@dataclass
class TestRecord:
    """One test of the run: outcome, how long, why it failed, its properties."""

    nodeid: str
    outcome: str = "passed"  # passed | failed | error | skipped
    seconds: float = 0.0
    error_type: str | None = None
    message: str | None = None
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def evidence(self) -> str | None:
        return self.properties.get("evidence")


@dataclass
class RunLog:
    """Every test report of a run, folded into one `TestRecord` per test."""

    run_id: str
    started: float = field(default_factory=time.time)
    tests: dict[str, TestRecord] = field(default_factory=dict)

    def add(
        self,
        nodeid: str,
        when: str,
        outcome: str,
        seconds: float,
        properties: Iterable[tuple[str, object]] = (),
        *,
        message: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Fold one report (setup, call or teardown) into its test's record:
        the worst outcome of its phases wins, with that phase's error."""
        record = self.tests.setdefault(nodeid, TestRecord(nodeid))
        record.seconds += seconds
        for name, value in properties:
            if isinstance(value, str | int | float | bool):
                record.properties[name] = str(value)
        verdict = outcome
        if outcome == "failed" and when != "call":
            verdict = "error"  # pytest's word for a failure outside the test body
        if ORDER.get(verdict, 0) > ORDER.get(record.outcome, 0):
            record.outcome = verdict
            record.error_type = error_type
            record.message = (message or "").strip().split("\n")[0][:300] or None

    def add_report(self, report: Any, skip: str = "") -> None:
        """Fold a pytest TestReport in (properties named `skip` left out)."""
        crash = getattr(report.longrepr, "reprcrash", None)
        message = getattr(crash, "message", None) or (
            str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else None
        )
        self.add(
            report.nodeid,
            report.when,
            report.outcome,
            report.duration,
            [(n, v) for n, v in report.user_properties if n != skip],
            message=message,
            error_type=error_type_of(message) if report.failed else None,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            "tests": [asdict(t) for t in self.tests.values()],
        }

    def write(self, folder: Path) -> Path:
        path = folder / "run.json"
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")
        return path


def error_type_of(message: str | None) -> str | None:
    """The exception's type name from pytest's one-line crash message
    ("harness.errors.DeviceError: ..." -> "DeviceError")."""
    head = (message or "").split(":", 1)[0].strip()
    return head.rsplit(".", 1)[-1] if head.replace(".", "").replace("_", "").isalnum() else None


def read_run(folder: Path) -> Mapping[str, Any] | None:
    """run.json of a run folder, or None if the run wrote none (interrupted hard)."""
    try:
        data = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
