"""The one-screen summary at the end of a run: scenario, outcome, boots, seconds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ScenarioSummary:
    """One row of the end-of-run summary."""

    scenario: str
    outcome: str
    boots: int
    seconds: float
    target: str = ""
    note: str = ""  # what the row adds, e.g. a sweep's states judged and boots with rates


def summary_table(rows: Sequence[ScenarioSummary], accel: str | None) -> list[str]:
    """The one-screen summary: scenario, outcome, boots, seconds."""
    if not rows:
        return []
    width = max(len("scenario"), *(len(r.scenario) for r in rows))
    lines = [f"{'scenario':<{width}}  {'outcome':<8} {'boots':>5} {'seconds':>8}"]
    lines += [
        f"{r.scenario:<{width}}  {r.outcome:<8} {r.boots:>5} {r.seconds:>8.1f}"
        + (f"  {r.note}" if r.note else "")
        for r in rows
    ]
    total = sum(r.seconds for r in rows)
    passed = sum(r.outcome == "passed" for r in rows)
    lines.append(
        f"{passed}/{len(rows)} passed, {sum(r.boots for r in rows)} boots, {total:.1f} s"
        + (f", accelerator: {accel}" if accel else "")
    )
    return lines
