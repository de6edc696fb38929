"""U-Boot's env as every contract's U-Boot keeps it: at raw offsets of the disk,
how its redundant copies count saves, and how Linux reads it.

Where a real board keeps its env (`CONFIG_ENV_OFFSET(_REDUND)` of its SD card
or eMMC, as RAUC's and SWUpdate's integration guides both recommend, for a
power-cut-safe redundant env). Whichever updater's contract a U-Boot runs
(Mender's, RAUC's, SWUpdate's), the copies are stored and saved the same way,
so every U-Boot contract at raw offsets shares this module:
- `OffsetsStorage`: read the env from the disk image or the device, and corrupt
  copies for a fault (with the proof that U-Boot rejects them);
- `saves_between`, `save_plan`: each save writes the copy that was not loaded,
  with the loaded copy's flags + 1 (U-Boot's `env/common.c`, `env/mmc.c`), so
  the flags byte counts saves and names the copy each one writes.

U-Boot's own console lines (`MARKERS`) are the same for every contract too:
its banner, each save, a kernel it could not boot, `Starting kernel ...`.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from harness.bootloaders.protocol import LINE_START, BootEnv, BootMarkers, env_listing
from harness.device.shell import ShellLike
from harness.envformat import EnvCorrupt
from harness.envformat.offsets import read_copies, read_env_at, write_copy
from harness.errors import DeviceError, HarnessConfigError
from harness.targets.target import EnvLocation

# U-Boot hands over to Linux here: every env save of the boot is done.
HANDOFF = re.compile(LINE_START + rb"Starting kernel \.\.\.")
MARKERS = BootMarkers(
    banner=re.compile(LINE_START + rb"U-Boot \d{4}\.\d{2}"),
    decision=None,
    # U-Boot names neither the reason nor the flags: `why` is empty.
    save=re.compile(
        LINE_START + rb"Saving Environment to MMC\.\.\. (?P<why>)Writing to "
        rb"(?P<file>(?:redundant )?MMC\(\d+\))\.\.\. OK"
    ),
    no_kernel=re.compile(
        LINE_START + rb"(?:Bad Linux ARM64 Image magic!|\*\* File not found [^\r\n]*)"
    ),
    handoff=HANDOFF,
)


def fw_printenv(shell: ShellLike) -> BootEnv:
    """The env as libubootenv's fw_printenv reads it on the device (wherever
    /etc/fw_env.config says it lives: files or raw offsets)."""
    fix = "check /etc/fw_env.config and that the env copies are intact"
    return env_listing(shell, "fw_printenv", "device:fw_printenv", fix)


def require_offsets(location: EnvLocation, kind: str) -> None:
    """A target that gives files for a bootloader kind that keeps its env at offsets."""
    if not location.at_offsets:
        raise HarnessConfigError(
            f"bootloader '{kind}' keeps its env at raw offsets (of the disk or a partition), "
            f"but the target gives files {list(location.files)}",
            "give 'ab-harness.env: {offsets: [0x400000, 0x800000], size: 0x4000}'",
        )


class OffsetsStorage:
    """The storage half of a U-Boot `Bootloader` whose env is at raw offsets of the
    disk or of one partition (`location.partition`)."""

    location: EnvLocation

    def env_from_image(self, disk: Path) -> BootEnv:
        """The env U-Boot would load from the disk image's raw offsets."""
        loc = self.location
        names = loc.copy_names
        source = f"host:{disk.name}@{'+'.join(names)}"
        parsed = read_env_at(
            disk, loc.disk_offsets(disk), loc.size, source=source.split(":", 1)[-1]
        )
        detail = {"copy": names[parsed.copy_index]}
        if parsed.flags is not None:
            detail["flags"] = str(parsed.flags)
        return BootEnv(parsed.vars, source, detail)

    def env_from_device(self, shell: ShellLike) -> BootEnv:
        """Read the env on the device with libubootenv's fw_printenv."""
        return fw_printenv(shell)

    def corrupt_env_copy(self, disk: Path, which: str) -> dict[str, object]:
        """Store a CRC32 that does not match the data of the chosen copies (so a
        copy corrupted twice stays corrupt), then read the env back to prove
        U-Boot will reject them."""
        loc = self.location
        names = loc.copy_names
        newest = self.env_from_image(disk).detail.get("copy", names[0])
        victims = victims_of(which, names, newest)
        offsets = loc.disk_offsets(disk)
        blobs = dict(zip(names, read_copies(disk, offsets, loc.size), strict=True))
        header = 5 if len(names) == 2 else 4  # crc32 (+ flags byte when redundant)
        for name in victims:
            blob = bytearray(blobs[name])
            blob[:4] = struct.pack("<I", zlib.crc32(blob[header:]) ^ 0xFFFFFFFF)
            write_copy(disk, offsets[names.index(name)], bytes(blob))
        try:
            still_valid = [self.env_from_image(disk).detail.get("copy")]
        except EnvCorrupt:
            still_valid = []
        if any(v in still_valid for v in victims):
            raise DeviceError(f"corrupting {victims} did not make them invalid", "harness bug")
        return {"corrupted": victims, "newest_before": newest, "valid_after": still_valid}


def victims_of(which: str, names: Sequence[str], newest: str) -> list[str]:
    """The copies a fault corrupts: "newest" (the one U-Boot loads), "oldest"
    or "all" (a single copy is hit by any choice)."""
    if which not in ("newest", "oldest", "all"):
        raise HarnessConfigError(
            f"no env copy '{which}'", "corrupt the 'newest', 'oldest' or 'all' copies"
        )
    if which == "all" or len(names) == 1:
        return list(names)
    if which == "newest":
        return [newest]
    return [n for n in names if n != newest]


def capabilities(location: EnvLocation, *always: str) -> frozenset[str]:
    """A contract's capabilities plus "env-redundant" where the env has two copies."""
    redundant = ("env-redundant",) if len(location.copy_names) == 2 else ()
    return frozenset((*always, *redundant))


def saves_between(before: BootEnv, after: BootEnv, copies: Sequence[str]) -> int | None:
    """Each save writes the other copy with the flags byte + 1, so the flags of
    the copy read afterwards count the saves (a save torn by a power cut leaves
    its copy invalid: it does not count). None with a single copy."""
    if len(copies) != 2:
        return None
    flags_before, flags_after = before.detail.get("flags"), after.detail.get("flags")
    none_before = before.detail.get("copy") == "none"
    if after.detail.get("copy") == "none":
        return 0 if none_before else None
    if flags_after is None or (flags_before is None and not none_before):
        return None
    # With no valid copy before, the first save writes flags 1.
    return (int(flags_after) - (0 if none_before else int(flags_before or 0))) % 256


def save_plan(
    before: BootEnv, count: int, copies: Sequence[str], first_save_copy: int
) -> tuple[tuple[str, int], ...]:
    """The (copy, flags) each of `count` saves writes: the copy the last one did
    not, with the flags byte + 1. With no valid copy the first save writes copy
    `first_save_copy` with flags 1 (U-Boot's env_init marks its default env
    valid, so its MMC driver's first save goes to the redundant copy, 1)."""
    if len(copies) != 2:
        return ()
    used = before.detail.get("copy")
    flags = int(before.detail.get("flags", "0"))
    if used in copies:
        target, next_flags = 1 - copies.index(used), flags + 1
    else:
        target, next_flags = first_save_copy, 1
    plan = []
    for _ in range(count):
        plan.append((copies[target], next_flags % 256))
        target, next_flags = 1 - target, next_flags + 1
    return tuple(plan)
