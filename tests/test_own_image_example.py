"""The guide's example target (targets/examples/own-image.yaml), filled in with
copies of the stock reference image's files as a user fills it with their own:
it loads, `target check` passes, and the commit and rollback scenarios pass on
it. Unfilled, it stops with one line; `--ab-target all` never picks it up."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessConfigError
from harness.images import default_cache_dir, ensure_image
from harness.options import option
from harness.targets.matrix import all_qemu_targets
from harness.targets.target import default_targets_dir, load_target
from harness.targets.targetcheck import check_target

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = default_targets_dir() / "examples" / "own-image.yaml"
COMMIT = "scenarios/test_update_commits.py::test_good_update_commits_and_survives_reboots"
ROLLBACK = "scenarios/test_failed_health_rolls_back.py::test_failed_health_check_rolls_back_to_a[1]"


def fill(out: Path, files: dict[str, Path]) -> Path:
    """The example with each placeholder replaced by a copy of a file, in `out`."""
    text = EXAMPLE.read_text()
    for placeholder, source in files.items():
        copy = out / source.name
        shutil.copyfile(source, copy)
        text = text.replace(placeholder, str(copy))
    path = out / "own-image.yaml"
    path.write_text(text)
    return path


def test_unfilled_it_is_one_line_naming_the_placeholders() -> None:
    with pytest.raises(HarnessConfigError) as info:
        load_target(str(EXAMPLE))

    message = str(info.value)
    assert "\n" not in message
    assert "its placeholders @BIOS@, @DISK@, @V2@ are not filled in" in message
    assert "docs/guide/own-device.md" in message


def test_it_is_no_target_of_the_targets_folder() -> None:
    assert "own-image" not in all_qemu_targets()
    with pytest.raises(HarnessConfigError, match="unknown target 'own-image'"):
        load_target("own-image")


@pytest.mark.nightly
@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None, reason="no qemu-system-aarch64")
@pytest.mark.timeout(900)
def test_filled_with_the_reference_files_it_commits_and_rolls_back(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    cache = option(pytestconfig, "ab_cache") or str(default_cache_dir())
    stock = ensure_image("arm64-uboot-stock", cache=Path(cache))
    files = {"@DISK@": stock.file("disk"), "@BIOS@": stock.file("bios")}
    yaml_path = fill(tmp_path, {**files, "@V2@": stock.payloads["v2"].path})

    checks = check_target(str(yaml_path), cache=Path(cache))
    assert [c.line() for c in checks if c.status == "FAIL"] == []

    accel = option(pytestconfig, "ab_accel") or "auto"
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:labgrid", "-q",
        "-rs", COMMIT, ROLLBACK, f"--ab-target={yaml_path}",
        f"--ab-results={tmp_path / 'results'}", f"--ab-cache={cache}", f"--ab-accel={accel}",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=850, check=False
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert last.startswith("2 passed in"), done.stdout[-3000:]
