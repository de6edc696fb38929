"""U-Boot's env at raw offsets of a partition (fw_env.config's `/dev/mmcblk0p1 0x0 0x4000`):
the target describes it, the host reads and writes it there, `env show --partition`
reads it, the disk check and the device's fw_env.config are held to the same
description."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.bootloaders import UBootMenderEnv
from harness.cli import main
from harness.device import fwenv
from harness.envformat import encode_env
from harness.errors import HarnessConfigError
from harness.fieldcase import hostfs
from harness.images import ImageSet
from harness.images.diskimage import partitions
from harness.targets.target import EnvLocation, check_against_disk, default_targets_dir, load_target
from harness.targets.targetcheck import disk_checks

MIB = 1 << 20
SIZE = 0x4000
OFFSETS = (0x0, 0x4000)
ENV = {"bootlimit": "1", "bootcount": "0", "upgrade_available": "0", "mender_boot_part": "3"}


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    """A 16 MiB disk: p1 a 1 MiB raw env partition holding both copies, p2 spare,
    p3/p4 the slots (ext4 magic only)."""
    path = tmp_path / "disk.img"
    with path.open("wb") as f:
        f.truncate(16 * MIB)
    table = "label: dos\n" + "".join(
        f"start={(1 + 2 * i) * MIB // 512}, size={MIB // 512 if i == 0 else 2 * MIB // 512}, "
        "type=83\n"
        for i in range(4)
    )
    subprocess.run(["sfdisk", "-q", str(path)], input=table.encode(), check=True)
    parts = {p.number: p for p in partitions(path)}
    with path.open("r+b") as f:
        for number in (3, 4):
            f.seek(parts[number].start_bytes + 1080)
            f.write(b"\x53\xef")
        for flags, offset in enumerate(OFFSETS, 1):
            f.seek(parts[1].start_bytes + offset)
            f.write(encode_env({**ENV, "bootcount": str(flags)}, SIZE, redundant_flags=flags))
    return path


def target(tmp_path: Path, **env: Any) -> Path:
    data = yaml.safe_load((default_targets_dir() / "qemu-arm64-uboot-stock.yaml").read_text())
    data["ab-harness"]["env"] = {"partition": 1, "offsets": list(OFFSETS), "size": SIZE, **env}
    data["ab-harness"]["slots"] = {"A": 3, "B": 4}
    path = tmp_path / "env-in-p1.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_target_describes_offsets_of_a_partition(tmp_path: Path) -> None:
    env = load_target(str(target(tmp_path))).env

    assert env == EnvLocation(1, (), SIZE, OFFSETS)
    assert env.copy_names == ("p1@0x0", "p1@0x4000")


def test_the_host_reads_and_writes_the_copies_inside_the_partition(
    tmp_path: Path, disk: Path
) -> None:
    spec = load_target(str(target(tmp_path)))
    start = next(p.start_bytes for p in partitions(disk) if p.number == 1)
    uboot = UBootMenderEnv(spec.env)

    env = uboot.env_from_image(disk)
    assert (env.vars["bootcount"], env.detail["copy"]) == ("2", "p1@0x4000")

    before = disk.read_bytes()
    facts = uboot.corrupt_env_copy(disk, "newest")
    after = disk.read_bytes()
    changed = [i for i in range(len(before)) if before[i] != after[i]]
    assert facts["corrupted"] == ["p1@0x4000"]
    assert changed and all(start + 0x4000 <= i < start + 0x4004 for i in changed)
    assert uboot.env_from_image(disk).vars["bootcount"] == "1"


def test_env_show_reads_offsets_of_a_partition(
    disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["env", "show", "--image", str(disk), "--offset", "0", "--offset", "0x4000"]

    assert main([*argv, "--size", "0x4000", "--partition", "1"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "bootcount=2" in shown and "mender_boot_part=3" in shown
    # The same offsets of the whole disk hold the partition table, no env.
    assert main([*argv, "--size", "0x4000"]) == 1
    assert "no valid U-Boot environment" in capsys.readouterr().err


def test_the_disk_check_holds_the_copies_to_their_partition(tmp_path: Path, disk: Path) -> None:
    check_against_disk(load_target(str(target(tmp_path))), disk)

    past_end = load_target(str(target(tmp_path, offsets=[0, MIB - 0x2000])))
    with pytest.raises(HarnessConfigError, match=r"ab-harness.env.offsets has a copy at 0xfe000"):
        check_against_disk(past_end, disk)
    absent = load_target(str(target(tmp_path, partition=7)))
    with pytest.raises(HarnessConfigError, match=r"ab-harness.env.partition is 7 but disk.img"):
        check_against_disk(absent, disk)


def test_the_devices_fw_env_config_is_held_to_the_same_description(tmp_path: Path) -> None:
    env = load_target(str(target(tmp_path))).env
    lines = fwenv.config_lines(env, "/dev/mmcblk0")

    assert lines == ["/dev/mmcblk0p1 0x0 0x4000", "/dev/mmcblk0p1 0x4000 0x4000"]
    assert fwenv.mismatch(env, "# two copies\n" + "\n".join(lines) + "\n") is None
    whole_disk = "/dev/mmcblk0 0x0 0x4000\n/dev/mmcblk0 0x4000 0x4000\n"
    assert fwenv.mismatch(env, whole_disk) == (
        "copy 1 is on /dev/mmcblk0 (the whole disk), the target's env is on partition 1"
    )
    assert "is at 0x8000" in (
        fwenv.mismatch(env, lines[0] + "\n/dev/mmcblk0p1 0x8000 0x4000") or ""
    )
    assert fwenv.partition_of("/dev/sda2") == 2 and fwenv.partition_of("/dev/nvme0n1") is None


@pytest.mark.ab_target("qemu-arm64-uboot-stock")
def test_target_check_fails_a_slot_whose_fw_env_config_names_other_bytes(
    ab_image: ImageSet, tmp_path: Path
) -> None:
    spec = load_target("qemu-arm64-uboot-stock")
    copy = tmp_path / "disk.img"
    shutil.copyfile(ab_image.file("disk"), copy)
    assert [c.line() for c in disk_checks(spec, copy)][-1].startswith("ok   fw_env.config")

    # Slot B's libubootenv pointed at a partition: the device would commit elsewhere.
    config = "/dev/mmcblk0p1 0x400000 0x4000\n/dev/mmcblk0p1 0x800000 0x4000\n"
    hostfs.write_file(copy, spec.slots["B"], "ext4", fwenv.PATH, config.encode())
    last = disk_checks(spec, copy)[-1]

    assert (last.status, last.topic) == ("FAIL", "fw_env.config")
    assert "slot B's /etc/fw_env.config copy 1 is on /dev/mmcblk0p1 (partition 1)" in last.detail
    assert "/dev/mmcblk0 0x400000 0x4000" in (last.fix or "")
