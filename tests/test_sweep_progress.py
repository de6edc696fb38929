"""The sweep's progress line: how far, elapsed, time left, states that broke."""

from __future__ import annotations

import argparse

from harness.cli import build_parser
from harness.faults.sweep import Outcome, SweepProgress


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
