"""describe_sector on disks built by the real tools (sfdisk, mkfs.vfat, mcopy).

The expected places come from outside the parser: file contents are
found by searching the image bytes, FAT geometry is read with `minfo`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from dmlog import LogWriter, sector_bytes
from fatdisk import BOOT_SECTORS, BOOT_START, ROOT_START, SECTOR, build_fat_disk, run, tool

from harness.cli import main
from harness.crashsweep.disklayout import DiskLayout, describe_range, describe_sector
from harness.errors import HarnessConfigError

FILES = {
    "uboot.env": b"E" * 16384,
    "uboot-redund.env": b"R" * 16384,
    "boot.scr": b"S" * 3000,
    "EFI/BOOT/bootaa64.efi": b"X" * 5000,
}
NAMES = {1: "boot", 2: "rootfs A"}


def geometry(fs_image: str) -> dict[str, int]:
    """Reserved sectors, sectors per FAT and root entries as `minfo` reports them."""
    out = subprocess.run(
        [tool("minfo"), "-i", fs_image, "::"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    ).stdout
    fields = {
        "reserved": r"reserved \(boot\) sectors: (\d+)",
        "fat": r"sectors per fat: (\d+)",
        "big_fat": r"Big fatlen=(\d+)",
        "root": r"max available root directory slots: (\d+)",
    }
    found = {k: re.search(p, out) for k, p in fields.items()}
    return {k: int(m.group(1)) for k, m in found.items() if m}


def sector_of(image: Path, content: bytes) -> int:
    return image.read_bytes().index(content) // SECTOR


@pytest.fixture(scope="module")
def fat12(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DiskLayout]:
    image = build_fat_disk(tmp_path_factory.mktemp("fat12"), FILES)
    return image, DiskLayout.read(image, NAMES)


def test_partitions_and_outside(fat12: tuple[Path, DiskLayout]) -> None:
    image, layout = fat12
    assert describe_sector(layout, 0) == "MBR"
    assert describe_sector(layout, 1) == "unpartitioned"
    assert describe_sector(layout, ROOT_START) == "rootfs A block 0/2"
    assert describe_sector(layout, ROOT_START + 2048) == "rootfs A block 1/2"
    assert describe_sector(layout, image.stat().st_size // SECTOR) == "past the end of the disk"


def test_fat_structures(fat12: tuple[Path, DiskLayout]) -> None:
    image, layout = fat12
    geo = geometry(f"{image}@@{BOOT_START * SECTOR}")
    fat_start = BOOT_START + geo["reserved"]
    root_start = fat_start + 2 * geo["fat"]
    assert layout.partitions[0].fat is not None and layout.partitions[0].fat.bits == 12
    assert describe_sector(layout, BOOT_START) == "boot: FAT boot sector"
    assert describe_sector(layout, fat_start) == "boot: FAT table"
    assert describe_sector(layout, fat_start + geo["fat"]) == "boot: FAT table (copy 2)"
    assert describe_sector(layout, root_start) == "boot: root directory"
    assert describe_sector(layout, BOOT_START + BOOT_SECTORS // 2) == "boot: free cluster"


def test_files_by_their_long_names(fat12: tuple[Path, DiskLayout]) -> None:
    image, layout = fat12
    for name, content in FILES.items():
        first = sector_of(image, content)
        sectors = len(content) // SECTOR
        assert describe_sector(layout, first) == f"boot: {name}"
        assert describe_sector(layout, first + sectors - 1) == f"boot: {name}"
    env = sector_of(image, FILES["uboot.env"])
    assert describe_range(layout, env, 32) == "boot: uboot.env"


def test_subdirectory_clusters(fat12: tuple[Path, DiskLayout]) -> None:
    image, layout = fat12
    raw = image.read_bytes()
    # The EFI/BOOT directory holds the short entry of bootaa64.efi.
    entry = raw.index(b"BOOTAA64EFI")
    assert describe_sector(layout, entry // SECTOR) == "boot: directory EFI/BOOT"


def test_range_across_regions(fat12: tuple[Path, DiskLayout]) -> None:
    image, layout = fat12
    reserved = geometry(f"{image}@@{BOOT_START * SECTOR}")["reserved"]
    after_boot = "boot: FAT table" if reserved == 1 else "boot: FAT reserved sectors"
    text = describe_range(layout, BOOT_START - 1, 3)
    assert text == f"unpartitioned, boot: FAT boot sector, {after_boot}"
    whole = describe_range(layout, 0, 2 * BOOT_START)
    assert re.fullmatch(r"MBR, unpartitioned, boot: FAT boot sector \(\+\d+ more\)", whole)


def test_describe_is_fast(fat12: tuple[Path, DiskLayout]) -> None:
    _, layout = fat12
    started = time.perf_counter()
    for i in range(20_000):
        describe_range(layout, BOOT_START + i % BOOT_SECTORS, 8)
    assert time.perf_counter() - started < 2.0


def test_gpt_disk(tmp_path: Path) -> None:
    image = build_fat_disk(tmp_path, FILES, label="gpt")
    layout = DiskLayout.read(image)
    assert describe_sector(layout, 0) == "protective MBR"
    assert describe_sector(layout, 1) == "GPT header"
    assert describe_sector(layout, 2) == "GPT partition entries"
    env = sector_of(image, FILES["uboot-redund.env"])
    assert describe_sector(layout, env) == "p1: uboot-redund.env"
    assert describe_sector(layout, ROOT_START) == "p2 block 0/2"


def test_fat32(tmp_path: Path) -> None:
    start, sectors = 2048, 80 * 2048  # 80 MiB, enough for mkfs.vfat to pick FAT32
    fs = tmp_path / "fs.vfat"
    run(tool("mkfs.vfat"), "-F", "32", "-C", fs, str(sectors * SECTOR // 1024))
    payload = tmp_path / "payload"
    payload.write_bytes(b"L" * 9000)
    run(tool("mcopy"), "-i", fs, payload, "::A rather long file name.txt")
    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate((start + sectors) * SECTOR)
    run(tool("sfdisk"), "-q", image, stdin=f"label: dos\nstart={start}, type=c\n".encode())
    run("dd", f"if={fs}", f"of={image}", f"bs={SECTOR}", f"seek={start}", "conv=notrunc")
    layout = DiskLayout.read(image, {1: "boot"})
    geo = geometry(f"{image}@@{start * SECTOR}")
    fat = layout.partitions[0].fat
    assert fat is not None and fat.bits == 32
    assert describe_sector(layout, start + 1) == "boot: FAT FSInfo sector"
    assert describe_sector(layout, start + 6) == "boot: FAT backup boot sector"
    assert describe_sector(layout, start + geo["reserved"]) == "boot: FAT table"
    assert describe_sector(layout, start + geo["reserved"] + geo["big_fat"]) == (
        "boot: FAT table (copy 2)"
    )
    found = sector_of(image, b"L" * 9000)
    assert describe_sector(layout, found) == "boot: A rather long file name.txt"
    assert describe_sector(layout, sector_of(image, b"ARATHE~1TXT")) == "boot: root directory"


def test_cli_show_names_what_each_write_touches(tmp_path: Path, capsys) -> None:
    image = build_fat_disk(tmp_path, FILES)
    manifest = {"boot_partition": 1, "slots": {"A": 2}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    env = sector_of(image, FILES["uboot-redund.env"])
    w = LogWriter()
    w.write(env, sector_bytes(1, 32))
    w.flush()
    w.write(ROOT_START + 2048, sector_bytes(2, 8))
    log_path = w.save(tmp_path / "log.bin")
    assert main(["writelog", "show", str(log_path), "--disk", str(image)]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert rows[0].split(None, 4) == ["0", "write", str(env), "32", "boot: uboot-redund.env"]
    assert rows[1].split() == ["1", "flush", "-", "-"]
    assert rows[2].endswith("  rootfs A block 1/2")


def test_not_a_disk(tmp_path: Path) -> None:
    path = tmp_path / "x.img"
    path.write_bytes(bytes(4096))
    with pytest.raises(HarnessConfigError, match="no partition table"):
        DiskLayout.read(path)


def test_env_copies_at_raw_offsets_are_named_outside_the_partitions(tmp_path: Path) -> None:
    """A U-Boot that keeps its env at raw offsets of the card (the stock image):
    the manifest's offsets name those sectors, the rest stays unpartitioned."""
    from harness.crashsweep.disklayout import regions_from_manifest

    image = tmp_path / "disk.img"
    with image.open("wb") as f:
        f.truncate(20 << 20)
    run(tool("sfdisk"), "-q", image, stdin=b"label: dos\nstart=32768, size=4096, type=83\n")
    manifest = {"env": {"size": 0x4000, "offsets": [0x400000, 0x800000]}}
    layout = DiskLayout.read(image, {1: "boot"}, regions_from_manifest(manifest))

    assert describe_sector(layout, 0x400000 // SECTOR) == "env 0x400000"
    assert describe_sector(layout, 0x800000 // SECTOR + 31) == "env 0x800000"
    assert describe_sector(layout, 0x800000 // SECTOR + 32) == "unpartitioned"
    assert describe_sector(layout, 0x400000 // SECTOR - 1) == "unpartitioned"
    assert describe_range(layout, 0x400000 // SECTOR - 1, 2) == "unpartitioned, env 0x400000"
    assert describe_sector(layout, 32768) == "boot block 0/2"
    assert regions_from_manifest({"env": {"files": ["uboot.env"], "size": 0x4000}}) == []
