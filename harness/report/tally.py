"""Every test of a run counted once, and the check that a run tested something.

Folded from pytest's reports where every report arrives (the pytest-xdist
controller, or the single process), so the end-of-run summary counts every
collected test — passed, failed, skipped with its reason, error, finding —
whichever worker ran it, and gives the run's wall time rather than the sum of
the tests' times over the workers.

A target on which every test was skipped (no releases, a capability it lacks)
was not tested: `untested` names it and what it lacks, and the plugin ends
such a run with exit status 1 (pytest's ``TESTS_FAILED``), so a nightly run on
a device the scenarios cannot drive is red, not green.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Outcomes in which the test did not run on its target.
NOT_RUN = ("skipped", "infra")


@dataclass
class TestCount:
    """One test: its outcome, why it was skipped, the target it used."""

    outcome: str = "passed"
    reason: str = ""
    target: str = ""
    # The body passed and the teardown failed: pytest's own line counts such a
    # test twice, once "passed" and once "error"; this count says "error".
    body_passed: bool = False


@dataclass
class RunTally:
    """The tests of a run, one `TestCount` each, and when the run began."""

    started: float = field(default_factory=time.monotonic)
    tests: dict[str, TestCount] = field(default_factory=dict)

    def add(self, report: Any) -> None:
        """Fold one pytest TestReport (setup, call or teardown) into its test."""
        count = self.tests.setdefault(report.nodeid, TestCount())
        xfail = getattr(report, "wasxfail", None)
        if report.when == "teardown":
            if report.failed and count.outcome not in ("failed", "error"):
                count.outcome = "error"
            return
        if report.failed:
            count.outcome = "failed" if report.when == "call" else "error"
        elif report.skipped:
            if xfail is not None:
                count.outcome = "finding" if str(xfail).startswith("finding:") else "xfailed"
            else:
                count.outcome, count.reason = "skipped", skip_reason(report)
        elif report.when == "call":
            count.outcome = "xpassed" if xfail is not None else "passed"
            count.body_passed = True

    def settle(self, nodeid: str, outcome: str, target: str) -> None:
        """The plugin's own word on a test that used a target (its summary row):
        it knows a finding and an infrastructure failure, which pytest does not."""
        count = self.tests.setdefault(nodeid, TestCount())
        count.target = target
        if outcome != "skipped" or count.outcome not in ("xfailed", "xpassed"):
            count.outcome = outcome

    def outcomes(self) -> Counter[str]:
        """Tests by outcome, each test once."""
        return Counter(t.outcome for t in self.tests.values())

    def twice_in_pytest(self) -> int:
        """Tests pytest's line counts both as passed and as an error."""
        return sum(t.body_passed and t.outcome == "error" for t in self.tests.values())

    def wall_s(self) -> float:
        return time.monotonic() - self.started

    def reason(self, nodeid: str) -> str:
        count = self.tests.get(nodeid)
        return count.reason if count is not None else ""

    def untested(self) -> list[str]:
        """One line per target none of whose tests ran, naming what it lacks."""
        by_target: dict[str, list[TestCount]] = {}
        for count in self.tests.values():
            if count.target:
                by_target.setdefault(count.target, []).append(count)
        lines = []
        for target, counts in sorted(by_target.items()):
            if any(c.outcome not in NOT_RUN for c in counts):
                continue
            skipped = [c for c in counts if c.outcome == "skipped"]
            if not skipped:
                continue  # all stopped by the lab, which says so itself (plugin_lab)
            lines.append(untested_line(target, len(counts), Counter(c.reason for c in skipped)))
        return lines


def untested_line(target: str, tests: int, reasons: Mapping[str, int]) -> str:
    """The one line that ends a run which tested nothing on `target`."""
    lacks = "; ".join(
        f"{why or 'no reason given'} ({n} test{'s' if n > 1 else ''})"
        for why, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    every = "its only test was" if tests == 1 else f"all {tests} of its tests were"
    return (
        f"ab-harness: nothing was tested on target {target}: {every} skipped, so the run "
        f"fails (exit status 1); it lacks: {lacks} — fix: give the target what the "
        f"scenarios need ('ab-harness target check {target}' says what each one lacks)"
    )


def skip_reason(report: Any) -> str:
    """The reason of a skipped report, without pytest's "Skipped: " prefix."""
    longrepr = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
    text = text.removeprefix("Skipped: ")
    return " ".join(text.split())
