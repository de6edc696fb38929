"""The plugin's run state, kept in pytest's stash: what its hooks and its
fixtures share (the run's id, the summary rows, each test's boots and outcome).
One module both import, so neither imports the other."""

from __future__ import annotations

import pytest

from harness.device.pace import Pace
from harness.images import ImageSet
from harness.images.build_progress import Mode
from harness.options import option
from harness.plugin.interrupts import Interrupts
from harness.report import ScenarioSummary
from harness.report.runlog import RunLog
from harness.report.tally import RunTally

INTERRUPTS = pytest.StashKey[Interrupts]()  # config: the SIGINT/SIGTERM handlers
SUMMARY = pytest.StashKey[list[ScenarioSummary]]()  # config: rows of the run summary
RUN_ID = pytest.StashKey[str]()  # config: this run's folder name under the results folder
RUNLOG = pytest.StashKey[RunLog]()  # config (controller): every test of the run
ACCEL = pytest.StashKey[str]()  # config: the accelerator QEMU ran with, and why
BOOTS = pytest.StashKey[int]()  # item: boots seen by the test
OUTCOME = pytest.StashKey[str]()  # item: passed / failed / error / skipped
NOTE = pytest.StashKey[str]()  # item: what its summary row adds (a sweep's counts, a skip's why)
TALLY = pytest.StashKey[RunTally]()  # config: every test of the run, counted once
IMAGES = pytest.StashKey[dict[str, ImageSet]]()  # config: images checked in this run
PACES = pytest.StashKey[dict[str, Pace]]()  # config: each target's pace in this process
STARTED = pytest.StashKey[float]()  # item: when its protocol began
ROW = "ab_harness_summary_row"  # user property carrying a summary row (also across xdist)
UNREPORTED = pytest.StashKey[dict[str, ScenarioSummary]]()  # config: torn down, not reported


def progress_mode(config: pytest.Config) -> Mode | None:
    mode = option(config, "ab_build_progress")
    return mode if mode in ("steps", "quiet", "full") else None  # type: ignore[return-value]
