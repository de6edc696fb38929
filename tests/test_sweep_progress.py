"""The sweep's progress line (how far, elapsed, time left, states that broke)
and its table: the part of the invariant each broken state broke, and the
two counts, states judged and boots, each with its rate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli import build_parser
from harness.crashsweep.crashstate import CrashState
from harness.crashsweep.recording import Recording
from harness.crashsweep.sweep import (
    Outcome,
    Point,
    SweepProgress,
    SweepReport,
    SweepRun,
    format_report,
)
from harness.images import Payload


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_line_counts_time_left_and_broken_states() -> None:
    clock = Clock()
    progress = SweepProgress(4, started=clock(), clock=clock)

    clock.now += 30
    first = progress.step("k=12 ordered", Outcome(2, "A", "1", "ok"), 3)
    clock.now += 30
    second = progress.step("k=40 volatile-cache", Outcome(3, None, None, "no shell: hung"), 2)

    assert (
        first
        == "[1/4] 25% 0:30 elapsed, ~1:30 left, 0 broke | k=12 ordered: ok (2 boots, 3 states)"
    )
    assert second == (
        "[2/4] 50% 1:00 elapsed, ~1:00 left, 2 broke | "
        "k=40 volatile-cache: no shell: hung (3 boots, 2 states)"
    )


def test_sweep_command_has_a_quiet_mode_for_ci() -> None:
    args = build_parser().parse_args(["sweep", "--quiet"])

    assert isinstance(args, argparse.Namespace)
    assert args.quiet is True
    assert build_parser().parse_args(["sweep"]).quiet is False


def test_the_table_names_the_broken_part_and_counts_states_and_boots_with_rates(
    tmp_path: Path,
) -> None:
    recording = Recording(
        base=tmp_path / "base.img",
        log=tmp_path / "writes.log",
        payload=Payload("v3", tmp_path / "rootfs-v3.img", "3" * 64, "3"),
        before_sha256="2" * 64,
        before="v2",
        data_files={},
        data_synced_at=1,
        phases=((0, "first boot"), (1, "install"), (50, "reboot into the update")),
        seconds=10.0,
        boots=2,
        workdir=tmp_path,
    )
    confused = "client: reports 'ab-harness-v2' installed, the running slot holds 'ab-harness-v3'"
    outcomes = [
        Outcome(1, "B", "3", "ok"),
        Outcome(1, "B", "3", confused),
        Outcome(3, None, None, "no shell: hung"),
    ]
    rows = tuple(
        (Point(k, "env write", "boot: uboot.env"), ordered(k), f"key{k}", outcome)
        for k, outcome in zip((5, 60, 61), outcomes, strict=True)
    )
    report = SweepReport(rows, experiments=3, boots=5, seconds=30.0)

    table = format_report(report, recording)
    assert [o.part for *_, o in rows] == ["", "client", "no shell"]
    assert "  B  client   client: reports" in table[2], table[2]
    assert table[-1] == (
        "v3 over a committed v2: 3 crash states judged (6.0/min), 5 boots (10.0/min) in 30 s; "
        "3 experiments; 2 states broke the invariant (client: 1, no shell: 1)"
    )
    written = json.loads(
        (
            SweepRun(recording, report, tuple(table)).write(tmp_path / "out").parent / "sweep.json"
        ).read_text()
    )
    assert (written["states_judged"], written["states_per_minute"]) == (3, 6.0)
    assert (written["boots"], written["boots_per_minute"]) == (5, 10.0)
    assert written["broke_by_part"] == {"client": 1, "no shell": 1}
    assert [r["broke"] for r in written["rows"]] == ["", "client", "no shell"]


def ordered(index: int) -> CrashState:
    return CrashState(index, "ordered", frozenset(range(index)), None, f"k={index} ordered")
