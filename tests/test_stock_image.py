"""The stock image as built: Mender as Debian ships it, writing the env once per
commit, with U-Boot's env at the SD card's raw offsets on both sides."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.artifacts.reader import read_artifact
from harness.clients.mender import COMMIT_BOTH_COPIES, artifact_for, mender_target
from harness.images import ImageSet
from harness.images.diskimage import partitions

pytestmark = pytest.mark.ab_target("qemu-arm64-uboot-stock")


def slot_file(disk: Path, partition: int, path: str, tmp_path: Path) -> str:
    """A file of a slot's ext4, read with debugfs from an extracted copy of the partition."""
    part = next(p for p in partitions(disk) if p.number == partition)
    image = tmp_path / f"p{partition}.img"
    with disk.open("rb") as src, image.open("wb") as dst:
        src.seek(part.start_bytes)
        dst.write(src.read(part.size_bytes))
    out = subprocess.run(
        ["debugfs", "-R", f"cat {path}", str(image)], capture_output=True, text=True, check=True
    )
    return out.stdout


def test_its_artifacts_carry_no_state_script_of_ours(ab_image: ImageSet) -> None:
    payload = ab_image.payloads["v2"]
    assert mender_target(payload).design == "stock"

    path = artifact_for(payload)
    artifact = read_artifact(path)

    assert artifact.state_scripts == ()
    assert COMMIT_BOTH_COPIES.encode() not in path.read_bytes()


def test_the_only_env_writer_of_the_health_path_is_one_mender_commit(
    ab_image: ImageSet, tmp_path: Path
) -> None:
    disk = ab_image.file("disk")
    conf = slot_file(disk, 2, "/etc/ab-update.conf", tmp_path)
    agent = slot_file(disk, 2, "/usr/sbin/ab-update", tmp_path)

    assert conf == 'COMMIT="mender --no-syslog commit"\n'
    # The health path writes the env only through $COMMIT, once, when an update is pending.
    health = agent[agent.index("cmd_health() {") : agent.index("cmd_status() {")]
    assert health.count("$COMMIT") == 1 and "ab-env set" not in health
    assert "fw_setenv" not in health
    # No state script folder of ours in the rootfs either (only Mender's version file).
    listing = subprocess.run(
        ["debugfs", "-R", "ls -l /etc/mender/scripts", str(tmp_path / "p2.img")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [line.split()[-1] for line in listing.splitlines() if line.strip()][2:] == ["version"]


def test_linux_names_the_sd_card_and_the_same_raw_offsets_as_u_boot(
    ab_image: ImageSet, tmp_path: Path
) -> None:
    disk = ab_image.file("disk")
    fw_env = [
        line.split()
        for line in slot_file(disk, 3, "/etc/fw_env.config", tmp_path).splitlines()
        if line and not line.startswith("#")
    ]
    mender_conf = json.loads(slot_file(disk, 3, "/etc/mender/mender.conf", tmp_path))

    assert fw_env == [
        ["/dev/mmcblk0", "0x400000", "0x4000"],
        ["/dev/mmcblk0", "0x800000", "0x4000"],
    ]
    assert (mender_conf["RootfsPartA"], mender_conf["RootfsPartB"]) == (
        "/dev/mmcblk0p2",
        "/dev/mmcblk0p3",
    )
    assert slot_file(disk, 3, "/etc/ab-disk.conf", tmp_path).splitlines()[-1] == "PART=mmcblk0p"
    assert disk.stat().st_size == 256 << 20
