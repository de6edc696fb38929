"""Test helper: a small raw disk image with a FAT partition 1 and a partition 2,
built with the real tools (sfdisk, mkfs.vfat, mmd/mcopy, dd) and no loop devices."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

SECTOR = 512
BOOT_START = 2048  # 1 MiB offset, as partitioning tools align
BOOT_SECTORS = 8192  # 4 MiB FAT
ROOT_SECTORS = 4096
ROOT_START = BOOT_START + BOOT_SECTORS
# Room at the end for GPT's backup header.
IMAGE_BYTES = (ROOT_START + ROOT_SECTORS + 64) * SECTOR


def tool(name: str) -> str:
    """Path of a tool (sbin included), or skip the test naming the Debian packages."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.skip(f"{name} not installed (Debian: fdisk, dosfstools, mtools, u-boot-tools)")
    return found


def build_fat_disk(
    tmp_path: Path,
    files: Mapping[str, bytes],
    *,
    label: str = "dos",
    rootfs: bytes = b"",
) -> Path:
    """disk.img in tmp_path: FAT partition 1 holding `files` (subfolders made as
    needed), partition 2 starting with `rootfs`."""
    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate(IMAGE_BYTES)
    boot_type, root_type = ("c", "83") if label == "dos" else ("U", "L")
    script = (
        f"label: {label}\n"
        f"start={BOOT_START}, size={BOOT_SECTORS}, type={boot_type}\n"
        f"start={ROOT_START}, size={ROOT_SECTORS}, type={root_type}\n"
    )
    run(tool("sfdisk"), "-q", image, stdin=script.encode())
    boot = tmp_path / "boot.vfat"
    boot.unlink(missing_ok=True)
    run(tool("mkfs.vfat"), "-C", boot, str(BOOT_SECTORS * SECTOR // 1024))
    folders = sorted({str(Path(name).parent) for name in files} - {"."}, key=len)
    for folder in folders:
        parts = Path(folder).parts
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            run(tool("mmd"), "-D", "s", "-i", boot, f"::{sub}", check=False)
    for name, data in files.items():
        source = tmp_path / "fatdisk-payload"
        source.write_bytes(data)
        run(tool("mcopy"), "-o", "-i", boot, source, f"::{name}")
    (tmp_path / "rootfs.part").write_bytes(rootfs)
    for part, start in ((boot, BOOT_START), (tmp_path / "rootfs.part", ROOT_START)):
        run("dd", f"if={part}", f"of={image}", f"bs={SECTOR}", f"seek={start}", "conv=notrunc")
    return image


def run(*argv: str | Path, stdin: bytes | None = None, check: bool = True) -> None:
    subprocess.run(
        [str(a) for a in argv],
        input=stdin,
        check=check,
        capture_output=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    )
