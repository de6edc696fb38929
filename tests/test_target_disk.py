"""The target YAML's partition map is checked against the real reference disk
before the first boot; a mismatch is one line naming the YAML key."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bootloaders import bootloader_for
from harness.device.live import live_target
from harness.errors import HarnessConfigError
from harness.images import ImageSet, ensure_image
from harness.targets.target import TargetSpec, check_against_disk, default_targets_dir, load_target

REFERENCE = default_targets_dir() / "qemu-arm64-uboot.yaml"
SLOTS = "slots: {A: 2, B: 3}"
ENV_PARTITION = "partition: 1\n"
ENV_FILES = "files: [uboot.env, uboot-redund.env]"


@pytest.fixture(scope="module")
def image() -> ImageSet:
    return ensure_image("arm64-uboot")


def spec_with(tmp_path: Path, old: str, new: str) -> TargetSpec:
    text = REFERENCE.read_text()
    assert old in text
    path = tmp_path / "x.yaml"
    path.write_text(text.replace(old, new))
    return load_target(str(path))


def test_reference_target_fits_its_disk(image: ImageSet) -> None:
    check_against_disk(load_target(str(REFERENCE)), image.file("disk"))


CASES = {
    "slot past the table": (
        SLOTS,
        "slots: {A: 2, B: 8}",
        "ab-harness.slots.B is partition 8 but disk.img has partitions 1-4 — fix: set "
        "ab-harness.slots.B",
    ),
    "slot one past the table": (
        SLOTS,
        "slots: {A: 2, B: 5}",
        "ab-harness.slots.B is partition 5 but disk.img has partitions 1-4",
    ),
    "slot on the FAT boot partition": (
        SLOTS,
        "slots: {A: 1, B: 3}",
        "ab-harness.slots.A is partition 1 of disk.img, which holds no ext4 file system",
    ),
    "env partition past the table": (
        ENV_PARTITION,
        "partition: 9\n",
        "ab-harness.env.partition is 9 but disk.img has partitions 1-4",
    ),
    "env partition is a rootfs": (
        ENV_PARTITION,
        "partition: 2\n",
        "ab-harness.env.files ['uboot.env', 'uboot-redund.env'] cannot be read from partition 2",
    ),
    "env file not there": (
        ENV_FILES,
        "files: [uboot.env, nope.env]",
        "ab-harness.env.files ['uboot.env', 'nope.env'] cannot be read from partition 1",
    ),
    "env larger than its files": (
        "size: 0x4000",
        "size: 0x40000",
        "ab-harness.env.size is 0x40000 but uboot.env in partition 1 of disk.img holds only 0x4000",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_mismatch_is_one_line_naming_the_key(tmp_path: Path, image: ImageSet, case: str) -> None:
    old, new, expected = CASES[case]
    spec = spec_with(tmp_path, old, new)

    with pytest.raises(HarnessConfigError) as info:
        check_against_disk(spec, image.file("disk"))

    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{spec.path}: ")
    assert expected in message
    assert " — fix: " in message


def test_both_slots_on_one_partition_is_refused_on_load(tmp_path: Path) -> None:
    with pytest.raises(HarnessConfigError) as info:
        spec_with(tmp_path, SLOTS, "slots: {A: 2, B: 2}")

    message = str(info.value)
    assert "\n" not in message
    assert "'ab-harness.slots' gives both slots partition 2" in message


def test_live_target_checks_before_power_on(tmp_path: Path, image: ImageSet) -> None:
    spec = spec_with(tmp_path, SLOTS, "slots: {A: 2, B: 5}")

    bootloader = bootloader_for("uboot", spec.env)
    with (
        pytest.raises(HarnessConfigError) as info,
        live_target(spec, image, tmp_path / "work", bootloader),
    ):
        pytest.fail("the target came up despite a slot map that does not fit the disk")

    assert "ab-harness.slots.B is partition 5" in str(info.value)
