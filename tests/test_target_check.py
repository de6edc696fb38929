"""`ab-harness target check` and `doctor --target`, on copies of the built
reference images and on broken YAMLs: each problem is one FAIL line naming
its cause and fix, and the command exits 1. Host-side only: nothing boots."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.bootloaders import bootloader_for
from harness.images import ImageSet, cached_image, default_cache_dir
from harness.targets.target import default_targets_dir, load_target

TARGETS = default_targets_dir()
REPO = TARGETS.parent
CACHE = default_cache_dir()


def built(recipe: str) -> ImageSet:
    image = cached_image(recipe, cache=CACHE)
    if image is None:
        pytest.skip(f"image '{recipe}' is not built (make images)")
    return image


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO), "AB_CACHE_DIR": str(CACHE)},
    )


def own_target(
    tmp_path: Path, reference: str, disk: str = "disk.img", slots: str = "{A: 2, B: 3}"
) -> Path:
    """The reference target as a user writes it for files of their own: the disk
    and U-Boot by path (copies in tmp_path), releases from the recipe."""
    text = (TARGETS / f"{reference}.yaml").read_text()
    image = built(load_target(reference).image or "")
    for name in ("disk.img", "u-boot.bin", "factory-env.pflash"):
        if (image.directory / name).is_file():
            subprocess.run(
                ["cp", "--sparse=always", str(image.directory / name), str(tmp_path / name)],
                check=True,
            )
    text = text.replace('"@image:disk"', disk).replace('"@image:bios"', "u-boot.bin")
    text = text.replace('"@image:factory_env"', "factory-env.pflash")
    text = text.replace("slots: {A: 2, B: 3}", f"slots: {slots}")
    path = tmp_path / "own.yaml"
    path.write_text(text)
    return path


def fail_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.lstrip().startswith("FAIL")]


def test_reference_image_copy_passes_every_check(tmp_path: Path) -> None:
    target = own_target(tmp_path, "qemu-arm64-uboot")

    proc = cli("target", "check", str(target))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"ok   images.disk: {tmp_path / 'disk.img'}" in out
    assert "ok   partition table: disk.img: dos table, partitions 1-4" in out
    assert re.search(r"^ok   slot B: partition 3, ext4, \d+ MiB$", out, re.M)
    assert "ok   env: valid at uboot.env + uboot-redund.env on partition 1 of disk.img" in out
    assert "ok   boots: slot A (mender_boot_part=2 upgrade_available=0" in out
    assert "ok   release v2: version 2 (rootfs-v2.img)" in out
    assert "ok   scenario test_good_update_commits_and_survives_reboots: can run" in out
    assert re.search(r"^ok   scenarios: (\d+) of \1 can run on own$", out, re.M)
    assert out.splitlines()[-1] == "ab-harness target check: ok"


def test_stock_image_copy_reads_the_env_at_raw_offsets(tmp_path: Path) -> None:
    target = own_target(tmp_path, "qemu-arm64-uboot-stock")

    proc = cli("target", "check", str(target))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   env: valid at offsets 0x400000, 0x800000 of disk.img" in proc.stdout
    assert "ok   boots: slot A (mender_boot_part=2" in proc.stdout


def test_a_missing_disk_fails_in_target_check_and_doctor(tmp_path: Path) -> None:
    target = own_target(tmp_path, "qemu-arm64-uboot", disk="nowhere/disk.img")

    check = cli("target", "check", str(target))
    doctor = cli("doctor", "--target", str(target))

    assert check.returncode == 1
    assert fail_lines(check.stdout) == [
        f"FAIL images.disk: {tmp_path / 'nowhere/disk.img'} does not exist — fix: put the file "
        f"there, or fix 'images:' in {target} (a relative path starts at the YAML)"
    ]
    assert "note disk: partition table, slots and env not checked: no disk" in check.stdout
    assert check.stdout.splitlines()[-1] == "ab-harness target check: 1 check(s) failed"
    assert doctor.returncode == 1
    assert re.search(
        r"^  FAIL +images.disk: .*nowhere/disk.img does not exist — fix:", doctor.stdout, re.M
    )
    assert doctor.stdout.splitlines()[-1] != "ab-harness doctor: ready"


def test_a_slot_outside_the_partition_table_fails_in_target_check_and_doctor(
    tmp_path: Path,
) -> None:
    target = own_target(tmp_path, "qemu-arm64-uboot", slots="{A: 2, B: 7}")

    check = cli("target", "check", str(target))
    doctor = cli("doctor", "--target", str(target))

    assert check.returncode == 1
    [fail] = fail_lines(check.stdout)
    assert fail == (
        "FAIL slot B: partition 7 is not in disk.img's table (partitions 1-4) — fix: set "
        f"ab-harness.slots.B in {target} to the partition of slot B's rootfs"
    )
    assert "ok   boots: slot A (mender_boot_part=2" in check.stdout  # the env itself is fine
    assert doctor.returncode == 1
    assert "FAIL     slot B: partition 7 is not in disk.img's table" in doctor.stdout


@pytest.mark.parametrize(
    ("reference", "where"),
    [
        ("qemu-arm64-uboot", "uboot.env + uboot-redund.env on partition 1 of disk.img"),
        ("qemu-arm64-uboot-stock", "offsets 0x400000, 0x800000 of disk.img"),
    ],
    ids=["files", "raw-offsets"],
)
def test_a_corrupt_env_fails_naming_where_it_was_looked_for(
    tmp_path: Path, reference: str, where: str
) -> None:
    target = own_target(tmp_path, reference)
    spec = load_target(str(target))
    proof = bootloader_for(spec.bootloader, spec.env).corrupt_env_copy(tmp_path / "disk.img", "all")
    assert proof  # the corruption happened (the bootloader module proves it)

    proc = cli("target", "check", str(target))

    assert proc.returncode == 1
    [line] = fail_lines(proc.stdout)
    assert line.startswith(f"FAIL env: not valid at {where}: "), line
    assert " — fix: " in line
    assert "\nok   boots:" not in proc.stdout  # no slot is claimed from an env that is not there


def test_a_target_without_releases_says_which_scenarios_it_cannot_run(tmp_path: Path) -> None:
    target = own_target(tmp_path, "qemu-arm64-uboot")
    text = target.read_text()
    target.write_text(
        text.replace("  image: arm64-uboot ", "  # no recipe ").replace(
            "        watchdog: i6300esb", "        # no watchdog"
        )
    )

    proc = cli("target", "check", str(target))

    assert proc.returncode == 1
    out = proc.stdout
    assert "FAIL releases: none: the target names no image recipe" in out
    assert (
        "note scenario test_good_update_commits_and_survives_reboots: cannot run: "
        "it installs a release and the target has none"
    ) in out
    assert re.search(
        r"^note scenario test_hung_userspace_is_reset_by_the_watchdog_and_rolls_back: "
        r"cannot run: target own lacks watchdog \(",
        out,
        re.M,
    )
    assert re.search(r"^ok   scenarios: \d+ of \d+ can run on own$", out, re.M)


def test_an_unloadable_yaml_is_one_fail_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((TARGETS / "qemu-arm64-uboot.yaml").read_text().replace("slots:", "slotz:"))

    proc = cli("target", "check", str(broken))

    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0].startswith(
        f"FAIL target: {broken}: unknown key 'ab-harness.slotz'"
    )
    assert len(proc.stdout.splitlines()) == 2


def test_every_reference_file_is_left_as_it_was(tmp_path: Path) -> None:
    """target check only reads: the disk copy hashes the same after it."""
    target = own_target(tmp_path, "qemu-arm64-uboot")
    before = sha256(tmp_path / "disk.img")
    cli("target", "check", str(target))
    assert sha256(tmp_path / "disk.img") == before


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def test_a_device_given_by_paths_only_lists_its_releases_and_what_is_derived(
    tmp_path: Path,
) -> None:
    """The foreign device (data first, slots 3 and 4, env at raw offsets), its YAML
    naming files only: every check passes, the given release is listed with its
    version, and the bad ones the scenarios need are derived."""
    from foreign_image import assemble

    device = assemble(built("arm64-uboot-stock"), tmp_path / "device")
    path = device.yaml

    done = cli("target", "check", str(path))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   release v2: version 2 (" in done.stdout
    assert "v2-bad" in done.stdout and "made on first use" in done.stdout
    assert not fail_lines(done.stdout)
