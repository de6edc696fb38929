"""The disk probe reads the env at a boot's two moments. A crash state can leave
the FAT holding the env half written, so the host cannot decode it: the probe
says it could not read (the boot is counted unjudged) instead of failing the run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.bootloaders import bootloader_for
from harness.device.live import DiskProbe
from harness.errors import HarnessConfigError
from harness.images import cached_image
from harness.images.diskimage import read_partition_file
from harness.targets.target import load_target


def test_a_fat_the_host_cannot_decode_is_an_env_not_read(tmp_path: Path) -> None:
    spec = load_target("qemu-x86_64-grub")
    image = cached_image(spec.image or "")
    if image is None:
        pytest.skip("image 'x86_64-grub' is not built (make images)")
    disk = tmp_path / "disk.img"
    subprocess.run(["cp", "--sparse=always", str(image.file("disk")), str(disk)], check=True)
    bootloader = bootloader_for(spec.bootloader, spec.env)
    probe = DiskProbe(bootloader, disk, None)
    assert probe.env_now("intact", pause=False) is not None

    # Both FAT copies of the ESP zeroed: every file's cluster chain is gone.
    start = 1 << 20  # the ESP's first byte (GPT, partition 1 at 1 MiB)
    boot = bytearray(disk.read_bytes()[start : start + 512])
    reserved = int.from_bytes(boot[14:16], "little")
    fats, per_fat = (
        boot[16],
        int.from_bytes(boot[22:24], "little") or int.from_bytes(boot[36:40], "little"),
    )
    with disk.open("r+b") as f:
        f.seek(start + reserved * 512 + 8)  # past the two reserved entries
        f.write(bytes(fats * per_fat * 512 - 8))
    with pytest.raises(HarnessConfigError):
        read_partition_file(disk, 1, spec.env.files[0])

    assert probe.env_now("torn FAT", pause=False) is None
