"""Known findings: what a stack under test does that its users do not expect.

A finding is a result, not a flake: a scenario asserts what a user would
expect, and on a stack that is known to do otherwise it fails the same way
every run. Each finding here is data: which stacks it applies to (the
target's `design`, the update client), the words its failure carries, and
where docs/findings.md explains it. A scenario names the findings it can show
(`@pytest.mark.ab_finding("id", ...)`); the plugin then reports a failure
that carries a finding's words, on a stack it applies to, as that finding
(pytest's xfailed, with the finding in the reason), and a run in which the
finding did not show as a failure: the stack changed, and docs/findings.md with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessConfigError


@dataclass(frozen=True)
class Stack:
    """What a finding depends on: the target's design, its update client and
    its bootloader contract (`bootloader:` in the target YAML)."""

    design: str
    client: str
    bootloader: str

    def __str__(self) -> str:
        return f"design {self.design}, client {self.client}, bootloader {self.bootloader}"


@dataclass(frozen=True)
class Finding:
    """One known behaviour of a stack, and how its failure reads."""

    id: str
    title: str
    signature: str  # a regex over the failure's text
    designs: frozenset[str] = frozenset({"hardened", "stock"})
    clients: frozenset[str] | None = None  # None: whichever client
    bootloaders: frozenset[str] | None = None  # None: whichever bootloader contract

    def applies(self, stack: Stack) -> bool:
        return (
            stack.design in self.designs
            and (self.clients is None or stack.client in self.clients)
            and (self.bootloaders is None or stack.bootloader in self.bootloaders)
        )

    def shows_in(self, text: str) -> bool:
        return re.search(self.signature, text) is not None


FINDINGS: dict[str, Finding] = {
    f.id: f
    for f in (
        Finding(
            "one-commit-write-downgrades",
            "A commit written to one env copy is undone when the newest copy is lost: "
            "the other copy still holds the trial boot's save, so the bootloader counts "
            "past bootlimit and rolls the committed update back (a silent downgrade)",
            r"the committed update was rolled back",
            designs=frozenset({"stock"}),
            # U-Boot's redundant env takes one copy a save; Mender's GRUB tools
            # write both copies on every fw_setenv. SWUpdate's confirm (ustate=0,
            # the count stopped) is one fw_setenv too.
            bootloaders=frozenset({"uboot", "uboot-mender", "uboot-swupdate"}),
        ),
        Finding(
            "mender-commit-env-before-database",
            "Mender 3.4's commit writes the env before its database: a power cut between "
            "the two leaves the new release running, committed, while the client reports "
            "the old one",
            r"client: reports '[^']*' installed, the running slot holds '[^']*'",
            clients=frozenset({"mender"}),
        ),
        Finding(
            "swupdate-cut-install-stays-in-progress",
            "A power cut during an SWUpdate install leaves its markers saying an install is "
            "running (ustate=7 IN_PROGRESS, recovery_status=in_progress) on a device back on "
            "its old copy with nothing pending, until the next install",
            r"recovery_status=in_progress(?:.|\n)*ustate=7",
            clients=frozenset({"swupdate"}),
        ),
        Finding(
            "rauc-untried-slot-stays-ok",
            "Under RAUC's documented GRUB scheme a slot that never reached Linux (a boot cut "
            "before its health check, a kernel that does not start, an init that panics) "
            "stays OK: nothing marks it bad, so after the rollback the env is that of an "
            "update still on trial, while RAUC reports nothing pending",
            r"client: believes nothing pending, the env says upgrade_available=1",
            clients=frozenset({"rauc"}),
            bootloaders=frozenset({"grub-rauc"}),
        ),
        Finding(
            "grub-editenv-rewrite-leaves-env-unreadable",
            "A power cut inside Mender's GRUB env tools (grub-editenv rewriting a file) can "
            "leave an env copy neither GRUB nor the tools repair: the device's own "
            "fw_printenv then fails, so the client can no longer read or write its env",
            r"invalid environment block|Unable to restore",
            designs=frozenset({"stock"}),
            bootloaders=frozenset({"grub-mender"}),
        ),
    )
}


def named(ids: Iterable[str]) -> list[Finding]:
    """The findings a scenario names; an unknown id is a scenario bug."""
    found = []
    for name in ids:
        if name not in FINDINGS:
            raise HarnessConfigError(
                f"no known finding '{name}'", f"use one of: {', '.join(sorted(FINDINGS))}"
            )
        found.append(FINDINGS[name])
    return found


def explaining(text: str, findings: Sequence[Finding], stack: Stack) -> list[Finding]:
    """The findings, among those that apply to this stack, whose words `text` carries."""
    return [f for f in findings if f.applies(stack) and f.shows_in(text)]


def expected_on(findings: Sequence[Finding], stack: Stack) -> list[Finding]:
    return [f for f in findings if f.applies(stack)]


def settle_report(report: Any, ids: Sequence[str], stack: Stack, strict: bool) -> bool:
    """Turn a test report into a finding's outcome where one applies: a failure
    carrying an expected finding's words becomes xfailed with the finding as its
    reason; with `strict`, a pass where a finding was expected becomes a failure
    (the stack no longer does what docs/findings.md says). Returns whether the
    report now stands for a finding shown."""
    expected = expected_on(named(ids), stack)
    if not expected or report.when != "call":
        return False
    if report.failed:
        shown = explaining(str(report.longrepr), expected, stack)
        if not shown:
            return False
        report.outcome = "skipped"
        report.wasxfail = "finding: " + "; ".join(f"{f.id}: {f.title}" for f in shown)
        return True
    if report.passed and strict:
        report.outcome = "failed"
        report.longrepr = (
            f"known finding(s) {', '.join(f.id for f in expected)} did not show on this stack "
            f"({stack}): the stack changed — check docs/findings.md and harness/judge/findings.py"
        )
    return False
