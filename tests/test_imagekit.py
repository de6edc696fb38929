"""The image kit builds filesystems and disks as plain files, with real tools."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "qemu-images"))

from imagekit.debs import sources_list
from imagekit.fsimage import MIB, PartitionSpec, assemble_disk, mkfs_ext4, mkfs_vfat
from imagekit.initramfs import pack_cpio
from imagekit.run import BuildError, run


def debugfs(image: Path, request: str) -> str:
    return run(["debugfs", "-R", request, image]).decode()


def test_mkfs_ext4_holds_the_tree_without_a_journal(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "version").write_text("7\n")
    image = tmp_path / "root.ext4"

    mkfs_ext4(tree, image, 8, "rootfs-x")

    assert image.stat().st_size == 8 * MIB
    features = run(["dumpe2fs", "-h", image]).decode()
    assert "has_journal" not in features.split("Filesystem features:")[1].splitlines()[0]
    assert debugfs(image, "cat /etc/version") == "7\n"


def test_mkfs_ext4_is_reproducible_across_builds(tmp_path: Path) -> None:
    images = []
    for build in ("one", "two"):
        tree = tmp_path / build / "tree"
        (tree / "bin").mkdir(parents=True)
        (tree / "bin" / "file").write_text("same\n")
        (tree / "bin" / "link").symlink_to("/bin/file")
        # Different mtimes, as two builds on different days would have.
        os.utime(tree / "bin" / "file", (1_000_000 * len(build), 1_000_000 * len(images)))
        images.append(tmp_path / build / "root.ext4")
        mkfs_ext4(tree, images[-1], 8, "x")
    assert images[0].read_bytes() == images[1].read_bytes()


def test_mkfs_vfat_copies_files_in(tmp_path: Path) -> None:
    payload = tmp_path / "boot.scr"
    payload.write_bytes(b"script")
    image = tmp_path / "boot.vfat"

    mkfs_vfat(image, 4, "BOOT", {"boot.scr": payload})

    out = run(["mtype", "-i", image, "::boot.scr"], env={"MTOOLS_SKIP_CHECK": "1"})
    assert out == b"script"


def test_mkfs_vfat_stamps_files_with_the_build_time_not_now(tmp_path: Path) -> None:
    source = tmp_path / "boot.scr"
    source.write_bytes(b"script")
    image = tmp_path / "boot.vfat"

    mkfs_vfat(image, 4, "BOOT", {"boot.scr": source})

    env = {"MTOOLS_SKIP_CHECK": "1", "TZ": "UTC"}
    listing = run(["mdir", "-i", image, "::"], env=env).decode()
    entry = next(line for line in listing.splitlines() if line.startswith("boot"))
    assert "2023-11-14" in entry and "22:13" in entry  # BUILD_EPOCH, whatever today is
    assert "Volume in drive : is BOOT" in listing


def test_assemble_disk_places_each_partition_at_its_offset(tmp_path: Path) -> None:
    first = tmp_path / "p1"
    first.write_bytes(b"\x11" * MIB)
    second = tmp_path / "p2"
    second.write_bytes(b"\x22" * (2 * MIB))
    disk = tmp_path / "disk.img"

    table = assemble_disk(
        disk, [PartitionSpec("a", first, 2, "c"), PartitionSpec("b", second, 3, "83")]
    )

    assert disk.stat().st_size == 6 * MIB
    sfdisk = json.loads(run(["sfdisk", "--json", disk]))["partitiontable"]["partitions"]
    assert [(p["start"], p["size"]) for p in sfdisk] == [(t["start"], t["size"]) for t in table]
    data = disk.read_bytes()
    assert data[table[0]["start"] * 512 : table[0]["start"] * 512 + MIB] == b"\x11" * MIB
    assert data[table[1]["start"] * 512 : table[1]["start"] * 512 + 2 * MIB] == b"\x22" * (2 * MIB)


def test_assemble_disk_rejects_an_image_larger_than_its_partition(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * (2 * MIB))
    with pytest.raises(RuntimeError, match="exceeds its partition"):
        assemble_disk(tmp_path / "disk.img", [PartitionSpec("big", big, 1, "83")])


def test_pack_cpio_is_a_gzip_newc_archive_of_the_tree(tmp_path: Path) -> None:
    tree = tmp_path / "initramfs"
    (tree / "bin").mkdir(parents=True)
    (tree / "init").write_text("#!/bin/sh\n")
    (tree / "bin" / "tool").write_text("x")
    out = tmp_path / "initrd.gz"

    pack_cpio(tree, out)

    listing = (
        subprocess.run(
            ["cpio", "-t", "--quiet"],
            input=gzip.decompress(out.read_bytes()),
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split()
    )
    assert sorted(listing) == [".", "bin", "bin/tool", "init"]


def test_run_names_the_package_of_a_missing_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # mcopy lives in /usr/bin, so it is not found
    with pytest.raises(BuildError, match="apt-get install mtools"):
        run(["mcopy", "--version"])


def test_run_reports_a_failing_tool_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as err:
        run(["sfdisk", "--json", tmp_path / "no-such-disk.img"])
    assert "\n" not in str(err.value)
    assert "sfdisk failed" in str(err.value)


def test_sources_list_uses_the_lab_mirror_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "http://deb.debian.org/debian bookworm main" in sources_list("arm64")
    monkeypatch.setenv("AB_DEBIAN_MIRROR", "http://mirror.lab/debian")
    lines = sources_list("arm64").splitlines()
    assert lines[0].startswith("deb [arch=arm64 signed-by=")
    assert lines[0].endswith("http://mirror.lab/debian bookworm main")


def test_mkfs_ext4_gives_a_read_write_partition_a_journal(tmp_path: Path) -> None:
    # /data is mounted read-write: without a journal, sync(2) can return with
    # its metadata still unflushed (see tests/test_data_sync.py).
    tree = tmp_path / "tree"
    tree.mkdir()
    image = tmp_path / "data.ext4"

    mkfs_ext4(tree, image, 16, "data", journal=True)

    features = run(["dumpe2fs", "-h", image]).decode()
    assert "has_journal" in features.split("Filesystem features:")[1].splitlines()[0]
    assert image.stat().st_size == 16 * MIB
