"""Files inside the FAT partition of a raw disk image, without root or loop devices.

The partition table is read with ``sfdisk --json`` and the FAT file system
with mtools at the partition's byte offset (``mcopy -i IMAGE@@OFFSET``).

Works while QEMU has the image open: QEMU guards its images with OFD
byte-range locks (``fcntl``), while mtools' own locking is ``flock(2)``,
which Linux keeps apart from ``fcntl`` locks (and mtools 4.0.32 takes no
lock at all on ``-i`` images).
What this module reads is what QEMU has written to the image so far; a
guest may still hold newer data in its page cache.  Write only while the
guest is stopped or has the partition unmounted, or the guest's FAT driver
and mtools will overwrite each other's metadata.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import EnvironmentMissing, HarnessConfigError, HarnessError

__all__ = [
    "Partition",
    "partition_sha256",
    "partitions",
    "read_partition_bytes",
    "read_partition_file",
    "write_partition_file",
]

log = logging.getLogger(__name__)

# sfdisk lives in /usr/sbin, which a normal user's PATH on Debian lacks.
_SBIN_DIRS: tuple[str, ...] = ("/usr/sbin", "/sbin")
_TOOL_PACKAGES = {"sfdisk": "fdisk", "mcopy": "mtools"}
_TOOL_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Partition:
    """One partition table entry, in bytes from the start of the image."""

    number: int
    start_bytes: int
    size_bytes: int
    type: str


def partitions(image: Path) -> tuple[Partition, ...]:
    """The partitions of ``image`` (MBR or GPT) in table order.

    Raises `EnvironmentMissing` if sfdisk is not installed and
    `HarnessConfigError` if ``image`` is missing or has no partition table.
    """
    image = _existing(image)
    proc = _run(["sfdisk", "--json", str(image)], image)
    if proc.returncode != 0:
        raise HarnessConfigError(
            f"{image}: sfdisk cannot read a partition table: {_first_line(proc.stderr)}",
            "point at a whole-disk image with an MBR or GPT partition table",
        )
    try:
        table = json.loads(proc.stdout)["partitiontable"]
        sector = int(table.get("sectorsize", 512))
        result = tuple(
            Partition(
                number=_partition_number(entry["node"]),
                start_bytes=int(entry["start"]) * sector,
                size_bytes=int(entry["size"]) * sector,
                type=str(entry.get("type", "")),
            )
            for entry in table.get("partitions", [])
        )
    except (ValueError, KeyError, TypeError) as err:
        raise HarnessError(
            f"{image}: unexpected `sfdisk --json` output ({err!r})",
            "report this with the output of `sfdisk --json IMAGE`",
        ) from err
    log.debug("%s: partitions %s", image, result)
    return result


def read_partition_bytes(image: Path, partition_number: int) -> bytes:
    """The raw bytes of partition ``partition_number`` of ``image``."""
    part = partition(image, partition_number)
    with Path(image).open("rb") as f:
        f.seek(part.start_bytes)
        return f.read(part.size_bytes)


def partition_sha256(image: Path, partition_number: int, length: int | None = None) -> str:
    """Hex SHA-256 of the raw byte range of a partition (or its first `length`
    bytes, e.g. the size of the payload written into it), read in chunks."""
    part = partition(image, partition_number)
    digest = hashlib.sha256()
    with Path(image).open("rb") as f:
        f.seek(part.start_bytes)
        left = part.size_bytes if length is None else min(length, part.size_bytes)
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise HarnessConfigError(
                    f"{image}: partition {partition_number} extends past the end of the image",
                    "check the image was not truncated",
                )
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def read_partition_file(image: Path, partition_number: int, name: str) -> bytes:
    """The content of file ``name`` (``/``-separated) in the FAT file system of a partition.

    Raises `HarnessConfigError` naming image, partition and file if the
    partition does not exist, holds no FAT file system, or lacks the file;
    `EnvironmentMissing` if sfdisk or mtools is not installed.
    """
    return read_partition_files(image, partition_number, (name,))[0]


def read_partition_files(image: Path, partition_number: int, names: Sequence[str]) -> list[bytes]:
    """The contents of several files of one FAT partition, in order (one table lookup)."""
    part = partition(image, partition_number)
    image = _existing(image)
    target = _target(image, part)
    contents = []
    for name in names:
        proc = _mtools(["mcopy", "-n", "-i", target, _dos_name(name), "-"], image)
        if proc.returncode != 0:
            raise HarnessConfigError(
                f"{image}: cannot read {name!r} from FAT partition {partition_number}: "
                f"{_first_line(proc.stderr)}",
                f"check the partition number and the file name (`mdir -i {target} ::`)",
            )
        contents.append(proc.stdout)
    return contents


def write_partition_file(image: Path, partition_number: int, name: str, data: bytes) -> None:
    """Create or replace file ``name`` in the FAT partition with ``data``.

    On return the file reads back as exactly ``data`` (checked); nothing
    outside the partition's byte range is touched.  Errors as for
    `read_partition_file`; a failed read-back raises `HarnessError`.
    """
    part = partition(image, partition_number)
    image = _existing(image)
    with tempfile.TemporaryDirectory(prefix="ab-harness-") as tmp:
        source = Path(tmp) / "data"
        source.write_bytes(data)
        proc = _mtools(
            ["mcopy", "-o", "-i", _target(image, part), str(source), _dos_name(name)], image
        )
    if proc.returncode != 0:
        raise HarnessConfigError(
            f"{image}: cannot write {name!r} to FAT partition {partition_number}: "
            f"{_first_line(proc.stderr)}",
            "check the partition holds a FAT file system with room for the file "
            "and that its directory exists",
        )
    if read_partition_file(image, partition_number, name) != data:
        raise HarnessError(
            f"{image}: {name!r} in partition {partition_number} does not read back as written",
            "make sure nothing else writes the image (a running guest?)",
        )
    log.info("%s: wrote %d bytes to %s in partition %d", image, len(data), name, partition_number)


def partition(image: Path, number: int) -> Partition:
    """Partition `number` of `image`; HarnessConfigError names the ones there are."""
    table = partitions(image)
    for part in table:
        if part.number == number:
            return part
    present = ", ".join(str(p.number) for p in table) or "none"
    raise HarnessConfigError(
        f"{image}: no partition {number} (partitions: {present})",
        "pass one of the listed partition numbers",
    )


def _existing(image: Path) -> Path:
    path = Path(image).resolve()
    if not path.is_file():
        raise HarnessConfigError(f"{image}: disk image not found", "check the image path")
    return path


def _partition_number(node: str) -> int:
    # sfdisk names partitions IMAGE1, or IMAGEp1 when IMAGE ends in a digit.
    match = re.search(r"(\d+)$", node)
    if match is None:
        raise ValueError(f"partition node {node!r} has no number")
    return int(match.group(1))


def _target(image: Path, part: Partition) -> str:
    return f"{image}@@{part.start_bytes}"


def _dos_name(name: str) -> str:
    return "::" + name.lstrip("/")


def _first_line(text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no error message"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_SBIN_DIRS))
    if found is None:
        package = _TOOL_PACKAGES[name]
        raise EnvironmentMissing(
            f"`{name}` not found on PATH", f"apt-get install {package} (Debian package {package})"
        )
    return found


def _mtools(argv: list[str], image: Path) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    # Skip the "is this a floppy?" geometry check that rejects partition offsets,
    # and bound the wait should a newer mtools find another mtools holding a lock.
    env.update(MTOOLS_SKIP_CHECK="1", MTOOLS_LOCK_TIMEOUT="10")
    return _run(argv, image, env=env)


def _run(
    argv: list[str], image: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    executable = _tool(argv[0])
    log.debug("running %s", argv)
    try:
        return subprocess.run(
            argv,
            executable=executable,
            capture_output=True,
            check=False,
            env=env,
            timeout=_TOOL_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as err:
        raise HarnessError(
            f"{image}: `{' '.join(argv)}` did not finish in {_TOOL_TIMEOUT_S:.0f} s",
            "check whether another process holds a lock on the image",
        ) from err
