"""Put a file into (or take it out of) a partition of a disk image, on the host.

A replay restores the update client's state files into the data partition
of the disk it boots. ext4 is written with e2fsprogs' `debugfs` (the image
opened at the partition's byte offset: no root, no loop device); FAT with
mtools (`harness.images.diskimage`). Every write is read back.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from harness.errors import EnvironmentMissing, HarnessConfigError, HarnessError
from harness.images import diskimage

_TIMEOUT_S = 60.0


def write_file(disk: Path, partition: int, fstype: str, rel: str, data: bytes) -> None:
    """Create or replace `rel` (a path inside the partition's file system) with `data`."""
    if fstype in ("vfat", "msdos", "fat"):
        diskimage.write_partition_file(disk, partition, rel, data)
        return
    _require_ext(fstype, disk, partition)
    target = _ext_target(disk, partition)
    path = PurePosixPath(rel)
    with tempfile.TemporaryDirectory(prefix="ab-replay-") as tmp:
        source = Path(tmp) / "data"
        source.write_bytes(data)
        for parent in reversed(path.parents[:-1]):
            _debugfs(target, f"mkdir {parent}", write=True)  # "exists" is fine
        _debugfs(target, f"rm {path}", write=True)  # write refuses to overwrite
        _debugfs(target, f"write {source} {path}", write=True)
    if read_file(disk, partition, fstype, rel) != data:
        raise HarnessError(
            f"{disk}: {rel} in partition {partition} does not read back as written",
            "check that nothing else writes the image",
        )


def remove_file(disk: Path, partition: int, fstype: str, rel: str) -> None:
    """Make sure `rel` does not exist in the partition (absent already is fine)."""
    if fstype in ("vfat", "msdos", "fat"):
        raise HarnessConfigError(
            f"removing {rel} from a FAT partition is not supported",
            "keep client state on an ext4 partition",
        )
    _require_ext(fstype, disk, partition)
    target = _ext_target(disk, partition)
    _debugfs(target, f"rm {rel}", write=True)
    if read_file(disk, partition, fstype, rel) is not None:
        raise HarnessError(f"{disk}: {rel} in partition {partition} is still there after rm")


def read_file(disk: Path, partition: int, fstype: str, rel: str) -> bytes | None:
    """The bytes of `rel`, or None if it does not exist (ext4)."""
    _require_ext(fstype, disk, partition)
    target = _ext_target(disk, partition)
    listing = _debugfs(target, f"stat {rel}", write=False)
    if "File not found" in listing.stderr.decode(errors="replace"):
        return None
    return _debugfs(target, f"cat {rel}", write=False).stdout


def _require_ext(fstype: str, disk: Path, partition: int) -> None:
    if fstype not in ("ext2", "ext3", "ext4"):
        raise HarnessConfigError(
            f"{disk}: partition {partition} is {fstype}; client state can be restored "
            "into ext2/3/4 or FAT only",
            "keep the client's state files on an ext4 or FAT partition",
        )


def _ext_target(disk: Path, partition: int) -> str:
    part = next((p for p in diskimage.partitions(disk) if p.number == partition), None)
    if part is None:
        raise HarnessConfigError(
            f"{disk}: no partition {partition} to restore the client's state into",
            "replay on a target whose disk has the partition the bundle names",
        )
    # e2fsprogs' unix I/O manager takes the byte offset after a '?'.
    return f"{disk}?offset={part.start_bytes}"


def _debugfs(target: str, request: str, *, write: bool) -> subprocess.CompletedProcess[bytes]:
    tool = shutil.which("debugfs") or shutil.which("debugfs", path="/usr/sbin:/sbin")
    if tool is None:
        raise EnvironmentMissing("`debugfs` not found", "apt-get install e2fsprogs")
    argv = [tool, *(["-w"] if write else []), "-R", request, target]
    try:
        return subprocess.run(argv, capture_output=True, check=False, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise HarnessError(
            f"`debugfs -R '{request}'` did not finish in {_TIMEOUT_S:.0f} s",
            "check whether another process holds the image",
        ) from None
