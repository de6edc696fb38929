"""Known findings (harness.judge.findings): a failure carrying a finding's words, on a
stack the finding applies to, is reported as that finding; anywhere else it
stays a failure; and a strict finding that does not show fails the test."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness.errors import HarnessConfigError
from harness.judge.findings import FINDINGS, Stack, settle_report

DOWNGRADE = "one-commit-write-downgrades"
STOCK = Stack("stock", "mender", "uboot-mender")
HARDENED = Stack("hardened", "ab-update", "uboot")
COMMIT_ORDER = "mender-commit-env-before-database"


@dataclass
class Report:
    outcome: str
    longrepr: str = ""
    when: str = "call"

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


def test_a_failure_with_the_findings_words_on_its_stack_is_the_finding() -> None:
    report = Report("failed", "AssertionError: the committed update was rolled back: [('A',...)]")
    assert settle_report(report, [DOWNGRADE], STOCK, strict=True)
    assert report.outcome == "skipped"
    assert report.wasxfail.startswith(f"finding: {DOWNGRADE}: ")  # type: ignore[attr-defined]


def test_the_same_failure_on_a_stack_the_finding_does_not_apply_to_stays_a_failure() -> None:
    report = Report("failed", "AssertionError: the committed update was rolled back")
    assert not settle_report(report, [DOWNGRADE], HARDENED, strict=True)
    assert report.outcome == "failed"
    # Mender's GRUB tools write both copies: the finding is U-Boot's.
    grub = Report("failed", "AssertionError: the committed update was rolled back")
    assert not settle_report(grub, [DOWNGRADE], Stack("stock", "mender", "grub-mender"), True)
    assert grub.outcome == "failed"


def test_another_failure_of_a_test_that_names_a_finding_stays_a_failure() -> None:
    report = Report("failed", "AssertionError: data lost: /data/precious")
    assert not settle_report(report, [DOWNGRADE, COMMIT_ORDER], STOCK, strict=True)
    assert report.outcome == "failed"


def test_a_finding_that_did_not_show_fails_a_strict_test_and_not_a_lenient_one() -> None:
    strict = Report("passed")
    assert not settle_report(strict, [COMMIT_ORDER], STOCK, strict=True)
    assert strict.outcome == "failed" and "did not show" in strict.longrepr
    lenient = Report("passed")
    settle_report(lenient, [COMMIT_ORDER], STOCK, strict=False)
    assert lenient.outcome == "passed"
    # Where the finding does not apply, a pass is a pass.
    elsewhere = Report("passed")
    settle_report(elsewhere, [COMMIT_ORDER], HARDENED, strict=True)
    assert elsewhere.outcome == "passed"


def test_the_client_finding_reads_the_verdicts_words() -> None:
    words = "client: reports 'ab-harness-v2' installed, the running slot holds 'ab-harness-v3'"
    assert FINDINGS[COMMIT_ORDER].shows_in(f"k=12590 ordered: {words}")
    assert not FINDINGS[COMMIT_ORDER].shows_in("client: believes pending, the env says 0")


def test_an_unknown_finding_is_named() -> None:
    with pytest.raises(HarnessConfigError, match="no known finding 'nope'"):
        settle_report(Report("failed"), ["nope"], STOCK, strict=True)
