"""What the oracle concluded about a boot, as values.

A boot is judged from what any device shows: the env on the disk before it,
the env right after its bootloader's saves, and the slot Linux runs. From
those the oracle infers the bootloader's `Decision` and gives a `Judgement`:
ok, a violation of the contract, or "could not be judged" with the reason
(a boot the harness could not observe is counted and named, never passed
over). A decision line an image prints is kept beside it as a cross-check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["ok", "violation", "unjudged"]


@dataclass(frozen=True)
class Decision:
    """What a bootloader did in one boot: the slot it started, the count and
    pending flag it left (None where nothing shows them: a count kept in RAM
    and never saved), and how many times it saved the env (None: the env's
    format cannot tell, e.g. a copy without a flags byte)."""

    slot: str | None
    bootcount: int | None = None
    upgrade_available: bool | None = None
    saves: int | None = None


@dataclass(frozen=True)
class Violation:
    """A boot that did something the contract does not allow."""

    boot: int
    before: str
    expected: str
    observed: str
    differences: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"boot #{self.boot} broke the bootloader contract: {'; '.join(self.differences)}\n"
            f"  state before: {self.before}\n  expected: {self.expected}\n"
            f"  observed: {self.observed}"
        )


@dataclass(frozen=True)
class Judgement:
    """The oracle's verdict on one boot, with why, and the decision it observed."""

    boot: int
    verdict: Verdict
    reason: str
    decision: Decision | None = None
    violation: Violation | None = None

    def describe(self) -> str:
        word = {"ok": "ok", "violation": "VIOLATION", "unjudged": "COULD NOT BE JUDGED"}
        return f"#{self.boot} {word[self.verdict]} ({self.reason})"


@dataclass(frozen=True)
class Tally:
    """How many boots were judged, and which could not be, with their reasons."""

    judged: int
    violations: tuple[Judgement, ...]
    unjudged: tuple[Judgement, ...]

    @property
    def boots(self) -> int:
        return self.judged + len(self.unjudged)

    def line(self) -> str:
        """One line a person reads: "N boots judged, M could not be judged: #3 (...)"."""
        text = f"{self.judged} boots judged, {len(self.unjudged)} could not be judged"
        if self.unjudged:
            text += ": " + ", ".join(f"#{j.boot} ({j.reason})" for j in self.unjudged)
        if self.violations:
            text += f"; {len(self.violations)} broke the contract: " + ", ".join(
                f"#{j.boot}" for j in self.violations
            )
        return text


def tally(judgements: Sequence[Judgement | None]) -> Tally:
    """Count judgements (None: a boot the oracle was not asked about is skipped)."""
    done = [j for j in judgements if j is not None]
    return Tally(
        sum(j.verdict != "unjudged" for j in done),
        tuple(j for j in done if j.verdict == "violation"),
        tuple(j for j in done if j.verdict == "unjudged"),
    )
