"""A busy host does not make a healthy device look hung: the commit and the
rollback scenarios pass on the reference target while busy processes compete
with QEMU for every CPU, with a boot floor that a fixed deadline misses under
that load. So the test fails where deadlines do not follow the host's pace
(with `--ab-pace fixed`, or `AB_PACE=fixed`, it must fail: that shows the
floor bites), and it checks from the run's evidence that some boot did take
longer than the floor, which is what makes the pass mean something.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_own_image import COMMIT, REPO, ROLLBACK
from test_own_image import pytestmark as booting_arm64

from harness.device.pace import busy_host, read_run_queue
from harness.images import default_cache_dir
from harness.options import option

pytestmark = booting_arm64  # qemu, and skipped without qemu-system-aarch64
# Busy processes per CPU: with two, QEMU gets about 2/5 of a CPU and its
# boots take about 2.5 times as long as on an idle host, which leaves room
# for a floor above an idle boot and below a loaded one.
BUSY_PER_CPU = 2
# The boot floor, in seconds, for the reference target under TCG on a 2-core
# host: its boots take 1.0-1.8 s from banner to ready when the host is idle,
# 1.8-4.9 s with the busy processes running (measured, one run each).
FLOOR_S = 3


def test_commit_and_rollback_pass_on_a_loaded_host(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    pace = option(pytestconfig, "ab_pace") or "measured"
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:labgrid",
        "-p", "no:randomly", "-q", COMMIT, ROLLBACK, "--ab-target=qemu-arm64-uboot",
        f"--ab-boot-timeout={FLOOR_S}", f"--ab-pace={pace}",
        f"--ab-results={tmp_path / 'results'}", f"--basetemp={tmp_path / 'base'}",
        f"--ab-cache={option(pytestconfig, 'ab_cache') or default_cache_dir()}",
        f"--ab-accel={option(pytestconfig, 'ab_accel') or 'auto'}",
    ]  # fmt: skip
    cpus = os.cpu_count() or 1
    with busy_host(BUSY_PER_CPU * cpus):
        queue = read_run_queue()
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=540, check=False
        )

    assert queue is not None and queue.running >= BUSY_PER_CPU * cpus, queue  # loaded for real
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout, done.stdout[-2000:]
    # What makes the pass mean something: boots slower than the floor, which
    # a fixed deadline would have declared hung.
    seconds = [
        boot["seconds_to_ready"]
        for path in (tmp_path / "results" / "latest").glob("*/boots.json")
        for boot in json.loads(path.read_text())
        if boot["seconds_to_ready"] is not None
    ]
    assert len(seconds) == 6, seconds  # 4 ready boots to commit, 2 of 3 in the rollback
    assert max(seconds) > FLOOR_S, f"no boot slower than the {FLOOR_S} s floor: {seconds}"
