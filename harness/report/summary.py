"""The one-screen summary at the end of a run: scenario, outcome, boots, seconds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.judge.judgement import Judgement, tally


@dataclass(frozen=True)
class ScenarioSummary:
    """One row of the end-of-run summary."""

    scenario: str
    outcome: str
    boots: int
    seconds: float
    target: str = ""
    note: str = ""  # what the row adds, e.g. a sweep's states judged and boots with rates


@dataclass(frozen=True)
class RunTotals:
    """Every test of the run counted once (`harness.report.tally`), not only the
    rows, and the run's wall time (not the sum of its tests' times over workers)."""

    outcomes: Mapping[str, int]
    wall_s: float
    twice_in_pytest: int = 0  # tests pytest's line counts as passed and as an error


def summary_table(
    rows: Sequence[ScenarioSummary], accel: str | None, totals: RunTotals | None = None
) -> list[str]:
    """The one-screen summary: scenario, outcome, boots, seconds (and a skip's
    reason); the last line counts every test of the run and its wall time
    (`totals`; without it, the rows and the sum of their seconds)."""
    if not rows:
        return []
    width = max(len("scenario"), *(len(r.scenario) for r in rows))
    lines = [f"{'scenario':<{width}}  {'outcome':<8} {'boots':>5} {'seconds':>8}"]
    lines += [
        f"{r.scenario:<{width}}  {r.outcome:<8} {r.boots:>5} {r.seconds:>8.1f}"
        + (f"  {r.note}" if r.note else "")
        for r in rows
    ]
    if totals is None:
        outcomes: Mapping[str, int] = Counter(r.outcome for r in rows)
        seconds = sum(r.seconds for r in rows)
    else:
        outcomes, seconds = totals.outcomes, totals.wall_s
    tests = sum(outcomes.values())
    passed = outcomes.get("passed", 0)
    others = {o: n for o, n in outcomes.items() if o != "passed" and n}
    # Every outcome that is not a pass is named with its count: a finding (a
    # known behaviour of the stack, harness.judge.findings), a failure, a skip.
    said = "".join(f", {n} {_PLURAL.get(o, o) if n > 1 else o}" for o, n in sorted(others.items()))
    unlisted = tests - len(rows)
    lines.append(
        f"{passed}/{tests} passed{said}, {sum(r.boots for r in rows)} boots, {seconds:.1f} s"
        + (f", accelerator: {accel}" if accel else "")
    )
    if unlisted > 0:
        lines.append(f"({unlisted} of the {tests} tests use no target and have no row above)")
    if totals is not None and totals.twice_in_pytest:
        n = totals.twice_in_pytest
        lines.append(
            f"(pytest's line counts {n} of the errors as passed too: "
            f"{'its' if n == 1 else 'their'} body passed, the teardown failed)"
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
