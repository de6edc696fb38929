"""A user's own device, named by path: a layout the recipes never build (data
first, slots 3 and 4, U-Boot's env at raw offsets, no decision line), with
only its good release given. The shipped scenarios run on it as they are
(the bad releases derived from the good one), and the user's files read the
same sha256 afterwards, power cuts included.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from foreign_image import ForeignDevice, assemble

from harness.images import default_cache_dir, ensure_image
from harness.options import option

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(
        shutil.which("qemu-system-aarch64") is None, reason="qemu-system-aarch64 not installed"
    ),
]

REPO = Path(__file__).resolve().parents[1]
COMMIT = "scenarios/test_update_commits.py::test_good_update_commits_and_survives_reboots"
ROLLBACK = "scenarios/test_failed_health_rolls_back.py::test_failed_health_check_rolls_back_to_a[1]"
POWER_CUT = (
    "scenarios/test_power_cut_in_first_boot.py::test_power_cut_before_the_first_health_check[1-A]"
)
# Every non-nightly scenario that updates, commits or rolls back.
COMMIT_AND_ROLLBACK = (
    "scenarios/test_update_commits.py",
    "scenarios/test_failed_health_rolls_back.py",
    "scenarios/test_rollback_from_slot_b.py",
    "scenarios/test_boot_failures_roll_back.py",
    "scenarios/test_watchdog_rolls_back_a_hung_update.py",
    "scenarios/test_power_cut_in_first_boot.py",
)


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> ForeignDevice:
    cache = option(pytestconfig, "ab_cache")
    stock = ensure_image("arm64-uboot-stock", cache=Path(cache) if cache else None)
    return assemble(stock, tmp_path_factory.mktemp("my-device"))


def run_scenarios(
    device: ForeignDevice, pytestconfig: pytest.Config, out: Path, *selection: str
) -> subprocess.CompletedProcess[str]:
    """One inner pytest run of `selection` on the device's by-path YAML."""
    cache = option(pytestconfig, "ab_cache") or str(default_cache_dir())
    accel = option(pytestconfig, "ab_accel") or "auto"
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:labgrid", "-q",
        "-rs", "-m", "not nightly", *selection, f"--ab-target={device.yaml}",
        f"--ab-results={out / 'results'}", f"--ab-cache={cache}", f"--ab-accel={accel}",
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=1400, check=False
    )


def final_line(stdout: str) -> str:
    """pytest's own last line (e.g. "3 passed in 80.12s (0:01:20)")."""
    return stdout.strip().splitlines()[-1].strip()


def test_the_yaml_names_files_by_path_only(device: ForeignDevice) -> None:
    text = device.yaml.read_text()
    assert "@image:" not in text
    assert "image:" not in text.replace("images:", "")
    assert "v2-bad" not in text  # the bad releases are derived, not given


@pytest.mark.nightly
def test_a_commit_a_rollback_and_a_power_cut_leave_the_users_files_as_they_were(
    device: ForeignDevice, pytestconfig: pytest.Config, tmp_path: Path
) -> None:
    before = device.sha256s()
    done = run_scenarios(device, pytestconfig, tmp_path, COMMIT, ROLLBACK, POWER_CUT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert final_line(done.stdout).startswith("3 passed in"), done.stdout[-3000:]
    assert device.sha256s() == before


@pytest.mark.nightly
@pytest.mark.timeout(1500)
def test_every_commit_and_rollback_scenario_passes_on_a_foreign_layout(
    device: ForeignDevice, pytestconfig: pytest.Config, tmp_path: Path
) -> None:
    before = device.sha256s()
    done = run_scenarios(device, pytestconfig, tmp_path, *COMMIT_AND_ROLLBACK)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # Only passes: nothing skipped (for lack of releases or else), failed or errored.
    last = final_line(done.stdout)
    assert re.fullmatch(r"\d+ passed(, \d+ deselected)? in .*", last), done.stdout[-3000:]
    assert device.sha256s() == before
