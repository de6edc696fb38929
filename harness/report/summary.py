"""The one-screen summary at the end of a run: scenario, outcome, boots, seconds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.judgement import Judgement, tally


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
    others = Counter(r.outcome for r in rows if r.outcome != "passed")
    # Every outcome that is not a pass is named with its count: a finding (a
    # known behaviour of the stack, harness.findings), a failure, a skip.
    said = "".join(f", {n} {_PLURAL.get(o, o) if n > 1 else o}" for o, n in sorted(others.items()))
    lines.append(
        f"{passed}/{len(rows)} passed{said}, {sum(r.boots for r in rows)} boots, {total:.1f} s"
        + (f", accelerator: {accel}" if accel else "")
    )
    return lines


_PLURAL = {"finding": "findings", "error": "errors"}


# The user properties that carry one test's oracle counts to the summary
# (on the teardown report, so they reach the pytest-xdist controller too).
ORACLE = "oracle"
ORACLE_JUDGED = "oracle_judged"
ORACLE_UNJUDGED = "oracle_unjudged"
ORACLE_VIOLATIONS = "oracle_violations"


def oracle_properties(judgements: Sequence[Judgement | None]) -> list[tuple[str, object]]:
    """One test's oracle counts as report properties ([] when no boot was judged)."""
    done = [j for j in judgements if j is not None]
    if not done:
        return []
    counts = tally(done)
    return [
        (ORACLE, counts.line()),
        (ORACLE_JUDGED, counts.judged),
        (ORACLE_UNJUDGED, len(counts.unjudged)),
        (ORACLE_VIOLATIONS, len(counts.violations)),
    ]


def oracle_summary(tests: Iterable[tuple[str, Mapping[str, object]]]) -> list[str]:
    """The run's oracle line, then one line per test with a boot that could
    not be judged or broke the contract: `tests` is (name, properties) per test.
    [] when the oracle judged nothing in the run."""
    judged = unjudged = violations = 0
    named: list[str] = []
    for name, props in tests:
        if ORACLE not in props:
            continue
        mine = _count(props.get(ORACLE_UNJUDGED)), _count(props.get(ORACLE_VIOLATIONS))
        judged += _count(props.get(ORACLE_JUDGED))
        unjudged += mine[0]
        violations += mine[1]
        if any(mine):
            named.append(f"  {name}: {props[ORACLE]}")
    if not judged and not unjudged:
        return []
    head = f"{judged} boots judged, {unjudged} could not be judged"
    if unjudged:
        head += " — every boot must be judged: see each one's reason below"
    if violations:
        head += f"; {violations} broke the contract"
    return [head, *named]


def _count(value: object) -> int:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0
