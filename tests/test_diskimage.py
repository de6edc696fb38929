"""Files in a FAT partition of a raw disk image, built here with sfdisk, mkfs.vfat, mcopy and dd."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fatdisk import (
    BOOT_SECTORS,
    BOOT_START,
    ROOT_SECTORS,
    ROOT_START,
    SECTOR,
    build_fat_disk,
    tool,
)

from harness.errors import EnvironmentMissing, HarnessConfigError
from harness.images import diskimage
from harness.images.diskimage import (
    Partition,
    partition_sha256,
    partitions,
    read_partition_bytes,
    read_partition_file,
    write_partition_file,
)


@dataclass(frozen=True)
class Disk:
    image: Path
    files: dict[str, bytes]


def build_disk(tmp_path: Path, label: str = "dos") -> Disk:
    """An image with a FAT boot partition (1) holding ``files`` and a random rootfs (2)."""
    rng = random.Random(20240611)
    files = {"uboot.env": rng.randbytes(0x4000), "EFI/BOOT/grubenv": b"# GRUB Environment Block\n"}
    rootfs = rng.randbytes(ROOT_SECTORS * SECTOR)
    return Disk(build_fat_disk(tmp_path, files, label=label, rootfs=rootfs), files)


@pytest.fixture
def disk(tmp_path: Path) -> Disk:
    return build_disk(tmp_path)


def raw_range(image: Path, start_sector: int, sectors: int) -> bytes:
    return image.read_bytes()[start_sector * SECTOR : (start_sector + sectors) * SECTOR]


@pytest.mark.parametrize(
    ("label", "types"),
    [
        ("dos", ("c", "83")),
        ("gpt", ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "0FC63DAF-8483-4772-8E79-3D69D8477DE4")),
    ],
)
def test_partitions_match_the_table_sfdisk_wrote(
    tmp_path: Path, label: str, types: tuple[str, str]
) -> None:
    image = build_disk(tmp_path, label).image

    assert partitions(image) == (
        Partition(1, BOOT_START * SECTOR, BOOT_SECTORS * SECTOR, types[0]),
        Partition(2, ROOT_START * SECTOR, ROOT_SECTORS * SECTOR, types[1]),
    )


def test_reads_files_including_nested_ones(disk: Disk) -> None:
    for name, data in disk.files.items():
        assert read_partition_file(disk.image, 1, name) == data
    assert read_partition_file(disk.image, 1, "/uboot.env") == disk.files["uboot.env"]


def test_write_replaces_the_file_and_touches_nothing_else(tmp_path: Path, disk: Disk) -> None:
    outside_before = raw_range(disk.image, 0, BOOT_START)
    root_before = partition_sha256(disk.image, 2)
    new = random.Random(7).randbytes(0x4000)

    write_partition_file(disk.image, 1, "uboot.env", new)
    write_partition_file(disk.image, 1, "EFI/BOOT/new.bin", b"fresh")

    # Check through an independent path: carve the partition out and let
    # fsck and mtools look at it without any offset arithmetic of ours.
    carved = tmp_path / "carved.vfat"
    carved.write_bytes(raw_range(disk.image, BOOT_START, BOOT_SECTORS))
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    copied = subprocess.run(
        [tool("mcopy"), "-n", "-i", str(carved), "::uboot.env", "-"],
        check=True,
        capture_output=True,
        env=env,
    ).stdout
    assert copied == new
    assert read_partition_file(disk.image, 1, "EFI/BOOT/new.bin") == b"fresh"
    fsck = subprocess.run(
        [tool("fsck.vfat"), "-n", str(carved)], check=False, capture_output=True, text=True
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert raw_range(disk.image, 0, BOOT_START) == outside_before
    assert partition_sha256(disk.image, 2) == root_before


def test_partition_bytes_and_hash_cover_exactly_the_partition(disk: Disk) -> None:
    expected = raw_range(disk.image, ROOT_START, ROOT_SECTORS)

    assert read_partition_bytes(disk.image, 2) == expected
    assert partition_sha256(disk.image, 2) == hashlib.sha256(expected).hexdigest()


def test_missing_partition_names_image_and_partition(disk: Disk) -> None:
    with pytest.raises(HarnessConfigError, match=r"disk\.img: no partition 3 \(partitions: 1, 2\)"):
        read_partition_file(disk.image, 3, "uboot.env")


def test_missing_file_names_image_partition_and_file(disk: Disk) -> None:
    with pytest.raises(HarnessConfigError) as info:
        read_partition_file(disk.image, 1, "uboot-redund.env")

    message = str(info.value)
    assert str(disk.image) in message
    assert "'uboot-redund.env'" in message
    assert "partition 1" in message


def test_partition_without_fat_is_a_config_error(disk: Disk) -> None:
    with pytest.raises(HarnessConfigError, match="partition 2"):
        read_partition_file(disk.image, 2, "uboot.env")


def test_image_without_partition_table_is_a_config_error(tmp_path: Path) -> None:
    tool("sfdisk")
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1 << 20))

    with pytest.raises(HarnessConfigError, match=r"blank\.img.*partition table"):
        partitions(blank)


@pytest.mark.parametrize(("missing", "package"), [("sfdisk", "fdisk"), ("mcopy", "mtools")])
def test_missing_tool_names_the_debian_package(
    tmp_path: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch, missing: str, package: str
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in {"sfdisk", "mcopy"} - {missing}:
        (bin_dir / name).symlink_to(tool(name))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(diskimage, "_SBIN_DIRS", ())

    with pytest.raises(EnvironmentMissing, match=f"`{missing}`.*apt-get install {package}"):
        read_partition_file(disk.image, 1, "uboot.env")


def _qemu() -> list[str]:
    for binary, machine in (("qemu-system-x86_64", "pc"), ("qemu-system-aarch64", "virt")):
        path = shutil.which(binary)
        if path:
            return [path, "-M", machine]
    pytest.skip("no qemu-system-x86_64 or qemu-system-aarch64 installed")


def _locks_on(image: Path) -> list[str]:
    suffix = f":{image.stat().st_ino} "
    return [line for line in Path("/proc/locks").read_text().splitlines() if suffix in line]


def test_works_while_qemu_holds_the_image_open(disk: Disk) -> None:
    if not Path("/proc/locks").exists():
        pytest.skip("needs /proc/locks to prove QEMU holds its lock")
    argv = [
        *_qemu(),
        "-nodefaults",
        "-S",  # no guest code runs: the image stays as we wrote it
        "-display",
        "none",
        "-drive",
        f"file={disk.image},format=raw,if=none,id=boot",
        "-device",
        "virtio-blk-pci,drive=boot",
    ]
    qemu = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not _locks_on(disk.image):
            assert qemu.poll() is None, qemu.stderr.read() if qemu.stderr else ""
            assert time.monotonic() < deadline, "QEMU never locked the image"
            time.sleep(0.05)
        assert any("OFDLCK" in line for line in _locks_on(disk.image))

        write_partition_file(disk.image, 1, "uboot.env", b"written under QEMU")
        assert read_partition_file(disk.image, 1, "uboot.env") == b"written under QEMU"
        assert qemu.poll() is None
    finally:
        qemu.kill()
        qemu.wait(timeout=30)
