"""A target's partition map against its disk image, before anything boots.

The slots must be ext4 partitions of the disk, the env must be where
`ab-harness.env` says: its files on a partition that exists, or its copies
at raw offsets inside the disk and outside every partition, or inside the
partition the offsets are relative to. Errors name the YAML key that does
not fit the disk, so a wrong map is caught before a puzzling boot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessConfigError
from harness.images import diskimage

if TYPE_CHECKING:
    from harness.targets.target import EnvLocation, TargetSpec


EXT4_MAGIC_OFFSET = 1080  # superblock at 1024, s_magic at +56
EXT4_MAGIC = b"\x53\xef"  # 0xEF53 little-endian


def check_against_disk(spec: TargetSpec, disk: Path) -> None:
    """Check the YAML's partition map against the disk image before anything boots.

    The slots must be ext4 partitions of the disk, the env partition must
    exist and hold the env files.  Raises HarnessConfigError naming the YAML
    key that does not fit the disk.
    """
    table = {p.number: p for p in diskimage.partitions(disk)}
    present = _ranges(sorted(table))

    def fail(key: str, cause: str, fix: str) -> None:
        raise HarnessConfigError(f"{spec.path}: ab-harness.{key} {cause}", fix)

    for name, number in spec.slots.items():
        if number not in table:
            fail(
                f"slots.{name}",
                f"is partition {number} but {disk.name} has partitions {present}",
                f"set ab-harness.slots.{name} to the partition of slot {name}'s rootfs",
            )
        with disk.open("rb") as f:
            f.seek(table[number].start_bytes + EXT4_MAGIC_OFFSET)
            magic = f.read(len(EXT4_MAGIC))
        if magic != EXT4_MAGIC:
            fail(
                f"slots.{name}",
                f"is partition {number} of {disk.name}, which holds no ext4 file system "
                f"(magic at byte {EXT4_MAGIC_OFFSET} is {magic.hex() or 'past the end'}, not 53ef)",
                f"set ab-harness.slots.{name} to the partition of slot {name}'s ext4 rootfs",
            )
    env = spec.env
    if env.at_offsets:
        _check_env_offsets(spec, disk, table.values(), fail)
        return
    if env.partition not in table:
        fail(
            "env.partition",
            f"is {env.partition} but {disk.name} has partitions {present}",
            "set ab-harness.env.partition to the partition holding the env files",
        )
    try:
        blobs = diskimage.read_partition_files(disk, env.partition, env.files)
    except HarnessConfigError as err:
        fail(
            "env.files",
            f"{list(env.files)} cannot be read from partition {env.partition} of {disk.name} "
            f"({err.cause.split(': ', 2)[-1]})",
            "list the env files of the boot partition (`mdir -i DISK@@OFFSET ::`) "
            "or fix ab-harness.env.partition",
        )
    for name, blob in zip(env.files, blobs, strict=True):
        if len(blob) < env.size:
            fail(
                "env.size",
                f"is {env.size:#x} but {name} in partition {env.partition} of {disk.name} "
                f"holds only {len(blob):#x} bytes",
                "set ab-harness.env.size to the size the bootloader was built with",
            )


def _check_env_offsets(
    spec: TargetSpec,
    disk: Path,
    partitions: Iterable[diskimage.Partition],
    fail: Callable[[str, str, str], None],
) -> None:
    """Each env copy must lie where `env_offsets_problem` says it may."""
    table = [(p.number, p.start_bytes, p.size_bytes) for p in partitions]
    problem = env_offsets_problem(spec.env, disk.name, disk.stat().st_size, table)
    if problem is not None:
        key, cause, fix = problem
        fail(key, cause, fix)


def env_offsets_problem(
    env: EnvLocation, disk_name: str, disk_size: int, table: Iterable[tuple[int, int, int]]
) -> tuple[str, str, str] | None:
    """Why the env copies at raw offsets cannot be where `env` says (the key at
    fault, the cause, the fix), or None. `table`: (number, start, size) in bytes
    of each partition. Offsets of the disk must lie inside it and outside every
    partition; offsets of a partition inside that partition."""
    parts = {number: (start, size) for number, start, size in table}
    fix = "set ab-harness.env.offsets to the bootloader's CONFIG_ENV_OFFSET(_REDUND)"
    if env.partition:
        if env.partition not in parts:
            present = _ranges(sorted(parts))
            return (
                "env.partition",
                f"is {env.partition} but {disk_name} has partitions {present}",
                "set ab-harness.env.partition to the partition fw_env.config names (/dev/…pN)",
            )
        size = parts[env.partition][1]
        for offset in env.offsets:
            if offset + env.size > size:
                return (
                    "env.offsets",
                    f"has a copy at {offset:#x}..{offset + env.size:#x} of partition "
                    f"{env.partition}, past its end ({size:#x} bytes)",
                    fix + " (relative to the partition)",
                )
        return None
    for offset in env.offsets:
        end = offset + env.size
        if end > disk_size:
            return (
                "env.offsets",
                f"has a copy at {offset:#x}..{end:#x}, past the end of {disk_name} "
                f"({disk_size:#x} bytes)",
                fix,
            )
        for number, start, size in table:
            if offset < start + size and start < end:
                return (
                    "env.offsets",
                    f"has a copy at {offset:#x}..{end:#x} inside partition {number} "
                    f"of {disk_name} ({start:#x}..{start + size:#x})",
                    fix + ", or give ab-harness.env.partition for offsets of a partition",
                )
    return None


def _ranges(numbers: list[int]) -> str:
    """1, 2, 3, 4 → "1-4"; 1, 2, 5 → "1-2, 5"."""
    if not numbers:
        return "none"
    runs: list[list[int]] = [[numbers[0], numbers[0]]]
    for n in numbers[1:]:
        if n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)
