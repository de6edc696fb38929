"""U-Boot's env at raw byte offsets of a disk (or disk image): read and write it.

A board whose U-Boot keeps its env on the boot medium itself (an SD card or
eMMC, `CONFIG_ENV_IS_IN_MMC`) stores each copy at a fixed offset outside
every partition (`CONFIG_ENV_OFFSET`, `CONFIG_ENV_OFFSET_REDUND`), and
Linux's libubootenv names the same offsets in /etc/fw_env.config
(`/dev/mmcblk0 0x400000 0x4000`). The bytes are the format of
`harness.envformat.uboot`; this module only says where they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.envformat.uboot import UBootEnv, encode_env, parse_env, parse_env_copies
from harness.errors import HarnessConfigError

__all__ = ["read_copies", "read_env_at", "save_env_at", "write_copy"]


def _check(disk: Path, offsets: Sequence[int], size: int) -> int:
    if len(offsets) not in (1, 2):
        raise HarnessConfigError(
            f"{len(offsets)} env offsets given", "give one offset, or two for redundant copies"
        )
    try:
        disk_size = disk.stat().st_size
    except OSError as err:
        raise HarnessConfigError(
            f"cannot read {disk}: {err.strerror}", "pass the path of a disk image or device"
        ) from None
    for offset in offsets:
        if offset < 0 or offset + size > disk_size:
            raise HarnessConfigError(
                f"{disk}: an env copy at {offset:#x} of {size:#x} bytes does not fit in its "
                f"{disk_size:#x} bytes",
                "pass the offsets and size the bootloader was built with "
                "(CONFIG_ENV_OFFSET, CONFIG_ENV_OFFSET_REDUND, CONFIG_ENV_SIZE)",
            )
    return disk_size


def read_copies(disk: Path, offsets: Sequence[int], size: int) -> list[bytes]:
    """The raw bytes of each copy, `size` bytes at each offset, in order."""
    _check(disk, offsets, size)
    with disk.open("rb") as f:
        blobs = []
        for offset in offsets:
            f.seek(offset)
            blobs.append(f.read(size))
    return blobs


def read_env_at(disk: Path, offsets: Sequence[int], size: int, source: str = "") -> UBootEnv:
    """The env U-Boot would load from these offsets (the newer valid copy of two).

    Raises `EnvCorrupt` when no copy is valid, naming the disk and offsets.
    """
    where = source or f"{disk.name}@{'+'.join(f'{o:#x}' for o in offsets)}"
    blobs = read_copies(disk, offsets, size)
    if len(blobs) == 1:
        return parse_env(blobs[0], size=size, source=where)
    return parse_env_copies(blobs, where, size=size)


def write_copy(disk: Path, offset: int, data: bytes) -> None:
    """Write one copy's bytes at `offset`, in place (the disk keeps its size)."""
    _check(disk, [offset], len(data))
    with disk.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def save_env_at(
    disk: Path,
    offsets: Sequence[int],
    size: int,
    env: Mapping[str, str],
    *,
    first_when_invalid: int = 0,
) -> tuple[int, int | None]:
    """Save `env` as U-Boot's `saveenv` and libubootenv's `fw_setenv` do: with two
    copies, into the one not loaded, with the loaded copy's flags + 1; with no
    valid copy, into copy `first_when_invalid` with flags 1. Returns the offset
    written and its flags (None for a single copy)."""
    if len(offsets) == 1:
        write_copy(disk, offsets[0], encode_env(env, size))
        return offsets[0], None
    try:
        loaded = read_env_at(disk, offsets, size)
        target, flags = 1 - loaded.copy_index, ((loaded.flags or 0) + 1) % 256
    except HarnessConfigError:
        target, flags = first_when_invalid, 1
    write_copy(disk, offsets[target], encode_env(env, size, redundant_flags=flags))
    return offsets[target], flags
