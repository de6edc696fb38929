"""Filesystem and partitioned-disk images built as plain files.

`mkfs.ext4 -d` and `mkfs.vfat -C` + `mcopy` fill filesystems without
mounting them; `sfdisk` writes the partition table into the image file and
`dd conv=notrunc` places each filesystem at its partition's offset.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagekit.run import run

MIB = 1024 * 1024
SECTOR = 512
BUILD_EPOCH = 1700000000  # fixed timestamp for reproducible filesystems


def mkfs_ext4(tree: Path, out: Path, size_mib: int, label: str, *, journal: bool = False) -> None:
    """Make an ext4 image of exactly size_mib from the directory tree.

    No journal by default: slots are mounted read-only and must stay
    bit-identical, and a journal replay on mount would write to them.
    A file system mounted read-write (the data partition) needs one: without
    it, Linux's sync(2) issues its flush before it writes the metadata held
    in the block device's cache (inode table, bitmaps, directory blocks), so
    on a disk with a volatile write cache a file that `sync` returned on can
    still be lost (the crash-point sweep found it on x86_64). With the journal,
    the commit block is written with a flush and FUA before sync returns.
    """
    out.unlink(missing_ok=True)
    # mkfs copies each file's times from the tree: pin them, so the same tree
    # built on another day or machine gives the same image and payload sha256.
    # (e2fsprogs 1.47.0 has no SOURCE_DATE_EPOCH support for -d.)
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (BUILD_EPOCH, BUILD_EPOCH), follow_symlinks=False)
    env = dict(os.environ, E2FSPROGS_FAKE_TIME=str(BUILD_EPOCH))
    run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            label,
            "-O",
            ("has_journal" if journal else "^has_journal") + ",^metadata_csum_seed",
            "-E",
            "root_owner=0:0,hash_seed=4d2f3b7e-1b1c-4c9e-9a53-0b7b9b2b6a11",
            "-U",
            "clear",
            "-d",
            tree,
            out,
            f"{size_mib}M",
        ],
        env=env,
    )
    # ctime cannot be set on the host, and this mkfs copies it: rewrite it in the image.
    script = "".join(
        f"set_inode_field /{path.relative_to(tree)} ctime @{BUILD_EPOCH}\n"
        for path in tree.rglob("*")
    )
    script += f"set_inode_field / ctime @{BUILD_EPOCH}\n"
    commands = out.with_name(out.name + ".debugfs")
    commands.write_text(script)
    run(["debugfs", "-w", "-f", commands, out], env=env)
    commands.unlink()


def mkfs_vfat(out: Path, size_mib: int, label: str, files: Mapping[str, Path]) -> None:
    """Make a FAT image of size_mib holding `files` (name in image -> host file).

    Reproducible: fixed volume id, SOURCE_DATE_EPOCH for mtools, and every
    file stored with the build timestamp (mcopy -m keeps the host mtime).
    """
    out.unlink(missing_ok=True)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", SOURCE_DATE_EPOCH=str(BUILD_EPOCH), TZ="UTC")
    run(["mkfs.vfat", "-C", "-i", "abcd1234", out, str(size_mib * 1024)], env=env)
    # Labelled by mlabel, which honours SOURCE_DATE_EPOCH: mkfs.fat would stamp
    # the label's directory entry with the current time.
    run(["mlabel", "-i", out, "-N", "abcd1234", f"::{label}"], env=env)
    made: set[str] = set()
    for name, src in files.items():
        # A name with folders ("EFI/BOOT/BOOTX64.EFI") gets them made first.
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            if folder not in made:
                run(["mmd", "-i", out, f"::{folder}"], env=env)
                made.add(folder)
        os.utime(src, (BUILD_EPOCH, BUILD_EPOCH))
        run(["mcopy", "-m", "-o", "-i", out, src, f"::{name}"], env=env)


@dataclass(frozen=True)
class PartitionSpec:
    """One partition: its filesystem image file and its size in the table."""

    name: str
    image: Path
    size_mib: int
    type_code: str  # MBR type: "c" FAT32 LBA, "83" Linux; GPT: "U" ESP, "L" Linux


def assemble_disk(
    out: Path, partitions: Sequence[PartitionSpec], first_mib: int = 1, label: str = "dos"
) -> list[dict[str, int]]:
    """Write an MBR (`label` "dos") or GPT ("gpt") disk image with each
    partition's image copied in place.

    GPT ids (the disk's and each partition's) are derived from the partition
    names, so the same partitions give the same bytes. Returns the partition
    table as sfdisk reports it (start/size in sectors).
    """
    # GPT keeps a backup header in the disk's last sectors.
    total_mib = first_mib + sum(p.size_mib for p in partitions) + (1 if label == "gpt" else 0)
    out.unlink(missing_ok=True)
    with out.open("wb") as f:
        f.truncate(total_mib * MIB)
    if label == "gpt":
        script_lines = ["label: gpt", f"label-id: {_gpt_id('disk')}"]
    else:
        script_lines = ["label: dos", "label-id: 0x0ab0ab01"]
    start = first_mib * MIB // SECTOR
    for spec in partitions:
        sectors = spec.size_mib * MIB // SECTOR
        line = f"start={start}, size={sectors}, type={spec.type_code}"
        if label == "gpt":
            line += f", uuid={_gpt_id(spec.name)}, name={spec.name}"
        script_lines.append(line)
        start += sectors
    run(["sfdisk", "-q", out], stdin=("\n".join(script_lines) + "\n").encode())
    table = json.loads(run(["sfdisk", "--json", out]))["partitiontable"]["partitions"]
    for spec, entry in zip(partitions, table, strict=True):
        size = spec.image.stat().st_size
        if size > entry["size"] * SECTOR:
            raise RuntimeError(f"{spec.name}: image {size} bytes exceeds its partition")
        _copy_sparse(spec.image, out, entry["start"] * SECTOR)
    return [{"start": int(e["start"]), "size": int(e["size"])} for e in table]


def _gpt_id(name: str) -> str:
    """A GUID that depends only on `name` (reproducible GPT ids)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ab-harness:gpt:{name}")).upper()


def _copy_sparse(src: Path, dest: Path, offset: int) -> None:
    """Copy src into dest at offset, skipping all-zero blocks so dest stays sparse."""
    block = MIB
    zero = bytes(block)
    with src.open("rb") as fin, dest.open("r+b") as fout:
        pos = 0
        while chunk := fin.read(block):
            if chunk != zero[: len(chunk)]:
                fout.seek(offset + pos)
                fout.write(chunk)
            pos += len(chunk)
