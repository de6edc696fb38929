"""The target matrix: --ab-target lists, per-target ids, capability skips, the table."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessConfigError
from harness.images import default_cache_dir
from harness.targets.matrix import (
    Cell,
    all_qemu_targets,
    capabilities,
    matrix_table,
    scenario_of,
    target_names,
    unmet,
)
from harness.targets.target import default_targets_dir, load_target

REFERENCE = default_targets_dir() / "qemu-arm64-uboot.yaml"
# Read now: pytester points HOME at its own directory, which moves ~/.cache.
CACHE = default_cache_dir()


def test_a_comma_list_keeps_its_order_and_drops_repeats():
    assert target_names("b,a,b") == ["b", "a"]


def test_all_is_every_target_with_an_image_and_no_board():
    names = all_qemu_targets()
    assert "qemu-arm64-uboot" in names
    assert "example-board-uboot" not in names
    assert target_names("all,qemu-arm64-uboot") == names


def test_an_empty_entry_is_one_line():
    with pytest.raises(HarnessConfigError, match="empty entry"):
        target_names("a,,b")


def test_capabilities_come_from_the_machine_and_the_bootloader(tmp_path: Path):
    assert {"qemu", "watchdog", "bootlimit-n"} <= capabilities(load_target(str(REFERENCE)))
    plain = tmp_path / "no-watchdog.yaml"
    plain.write_text(REFERENCE.read_text().replace("watchdog: i6300esb", ""))
    spec = load_target(str(plain))
    assert "watchdog" not in capabilities(spec)
    why = unmet(spec, ["watchdog"])
    assert why is not None and "no-watchdog lacks watchdog" in why and "watchdog:" in why
    assert unmet(spec, ["qemu"]) is None


def test_the_table_has_a_row_per_scenario_and_a_column_per_target():
    cells = [
        Cell("test_a[1]", "t1", "passed"),
        Cell("test_a[1]", "t2", "failed"),
        Cell("test_b", "t1", "passed"),
        Cell("test_b", "t2", "skipped"),
    ]
    lines = matrix_table(cells)
    assert lines[0].split() == ["scenario", "t1", "t2"]
    assert lines[1].split() == ["test_a[1]", "passed", "failed"]
    assert lines[2].split() == ["test_b", "passed", "skipped"]
    assert lines[3:] == ["t1: 2/2 passed, 0 skipped", "t2: 0/2 passed, 1 skipped"]
    assert matrix_table(cells[:1]) == []  # one target: no matrix


def test_the_target_is_taken_out_of_the_id():
    assert scenario_of("f.py::test_x[qemu-a-1]", "qemu-a") == "test_x[1]"
    assert scenario_of("f.py::test_x[qemu-a]", "qemu-a") == "test_x"
    assert scenario_of("f.py::test_x", "qemu-a") == "test_x"


MATRIX_TEST = """
import pytest

@pytest.mark.parametrize("n", [1])
def test_uses_a_target(ab_target_spec, n):
    pass

@pytest.mark.ab_needs("watchdog")
def test_needs_a_watchdog(ab_target_spec):
    pass

def test_uses_none():
    pass
"""


def test_a_list_runs_each_test_on_each_target_and_skips_what_one_lacks(pytester: pytest.Pytester):
    pytester.makepyfile(MATRIX_TEST)
    (pytester.path / "qemu-one.yaml").write_text(REFERENCE.read_text())
    (pytester.path / "qemu-two.yaml").write_text(
        REFERENCE.read_text().replace("watchdog: i6300esb", "")
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:labgrid", "-rs", "-v",
        f"--ab-target={pytester.path}/qemu-one.yaml,{pytester.path}/qemu-two.yaml",
        f"--ab-results={pytester.path}/r", f"--ab-cache={CACHE}", "--collect-only", timeout=120,
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "*test_uses_a_target[[]qemu-one-1]*",
            "*test_uses_a_target[[]qemu-two-1]*",
            "*test_needs_a_watchdog[[]qemu-one]*",
            "*test_needs_a_watchdog[[]qemu-two]*",
            "*test_uses_none*",
        ]
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:labgrid", "-rs",
        f"--ab-target={pytester.path}/qemu-one.yaml,{pytester.path}/qemu-two.yaml",
        f"--ab-results={pytester.path}/r", f"--ab-cache={CACHE}", "-k", "needs", timeout=120,
    )  # fmt: skip
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*target qemu-two lacks watchdog*"])
