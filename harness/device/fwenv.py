"""The device's side of the env description: /etc/fw_env.config against the target's.

On the device, libubootenv's fw_printenv and fw_setenv (and every update
client built on them) find the env through /etc/fw_env.config, one line
per copy: `DEVICE OFFSET SIZE`. The harness reads and writes the env on
the host from `ab-harness.env` (`EnvLocation`). Both must describe the
same bytes, or the device commits into an env the bootloader never reads;
`config_lines` renders the target's description as fw_env.config lines,
and `mismatch` says where a device's file departs from it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from harness.targets.target import EnvLocation

PATH = "/etc/fw_env.config"
# A partition's device node: mmcblk0p2, nvme0n1p2, loop0p2 (a "p" after a
# digit), or sda2, vda2 (digits after letters).
_PARTITION = re.compile(r"^(?P<disk>.*\d)p(?P<n>\d+)$|^(?P<plain>.*[a-z])(?P<m>\d+)$")


class ConfigLine(NamedTuple):
    """One copy as fw_env.config names it."""

    device: str
    offset: int
    size: int


def parse(text: str) -> list[ConfigLine]:
    """The copies a fw_env.config names, in order (comments and blank lines skipped)."""
    lines = []
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) < 3:
            continue
        try:
            lines.append(ConfigLine(fields[0], int(fields[1], 0), int(fields[2], 0)))
        except ValueError:
            continue
    return lines


def partition_of(device: str) -> int | None:
    """The partition number a device node names (`/dev/mmcblk0p1` → 1), None
    for a whole disk (`/dev/mmcblk0`, `/dev/sda`)."""
    name = PurePosixPath(device).name
    match = _PARTITION.match(name)
    if match is None or (match.group("plain") and name.startswith(("mmcblk", "nvme", "loop"))):
        return None
    return int(match.group("n") or match.group("m"))


def config_lines(env: EnvLocation, disk: str, env_dir: str = "/uboot") -> list[str]:
    """fw_env.config lines for `env`: `disk` names the boot disk as the device's
    Linux does (/dev/mmcblk0), `env_dir` where env files' partition is mounted."""
    if not env.at_offsets:
        return [f"{env_dir.rstrip('/')}/{name} 0x0 {env.size:#x}" for name in env.files]
    separator = "p" if disk[-1:].isdigit() else ""
    device = f"{disk}{separator}{env.partition}" if env.partition else disk
    return [f"{device} {offset:#x} {env.size:#x}" for offset in env.offsets]


def mismatch(env: EnvLocation, text: str) -> str | None:
    """Where the device's fw_env.config `text` departs from `env`, or None."""
    lines = parse(text)
    count = len(env.offsets) if env.at_offsets else len(env.files)
    if len(lines) != count:
        return f"names {len(lines)} env copies, the target {count}"
    for i, line in enumerate(lines, 1):
        if line.size != env.size:
            return f"copy {i} has size {line.size:#x}, the target's env.size is {env.size:#x}"
        if not env.at_offsets:
            name = env.files[i - 1]
            if PurePosixPath(line.device).name != PurePosixPath(name).name:
                return f"copy {i} is {line.device}, the target's env.files says {name}"
            continue
        offset = env.offsets[i - 1]
        if line.offset != offset:
            return f"copy {i} is at {line.offset:#x}, the target's env.offsets says {offset:#x}"
        part = partition_of(line.device)
        if part != (env.partition or None):
            said = f"partition {part}" if part else "the whole disk"
            want = f"partition {env.partition}" if env.partition else "the whole disk"
            return f"copy {i} is on {line.device} ({said}), the target's env is on {want}"
    return None
