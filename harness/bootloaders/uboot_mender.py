"""A real U-Boot running Mender's chain from its env, the env at raw offsets of the disk.

What a Mender board runs: U-Boot built with CONFIG_BOOTCOUNT_LIMIT,
CONFIG_BOOTCOUNT_ENV and a redundant env at `CONFIG_ENV_OFFSET(_REDUND)` of
its SD card or eMMC; `bootcmd`, `altbootcmd`, `mender_setup` and
`mender_altbootcmd` are env variables; U-Boot's C code counts, decides and
saves. Its contract is Mender's table (`uboot_contract`), with what this
U-Boot does differently from the reference boot script:
- with no valid copy it boots its compiled-in default env, which U-Boot's
  env_init marks valid, so the first save goes to the redundant copy;
- "pending" is `upgrade_available` read as a decimal, not the string "1";
- it prints no decision line and its save lines name no flags: the saves are
  judged by the env on the disk afterwards, not by their order on the console.

Markers are U-Boot's own lines only: the banner, each save
(`Saving Environment to MMC... Writing to [redundant ]MMC(0)... OK`), a
kernel it could not boot, and `Starting kernel ...` (`HANDOFF`: every save
of the boot is on the disk by then).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.bootloaders.protocol import LINE_START, BootEnv, BootMarkers
from harness.bootloaders.uboot_contract import (
    MENDER_DEFAULT_ENV,
    MenderUBootContract,
    MenderUBootRules,
)
from harness.bootloaders.uboot_file import fw_printenv
from harness.envformat import EnvCorrupt
from harness.envformat.offsets import read_copies, read_env_at, write_copy
from harness.errors import DeviceError, HarnessConfigError
from harness.shell import ShellLike
from harness.target import EnvLocation

# The contract variables of the compiled-in default env (Mender's, plus the
# client's request to check the canary).
DEFAULT_ENV = {**MENDER_DEFAULT_ENV, "mender_check_saveenv_canary": "1"}
# Set in RAM before any save of a boot: by U-Boot itself (the control FDT's
# address, the console devices) and by Mender's mender_setup.
RUNTIME_VARS = frozenset(
    {"fdtcontroladdr", "stdin", "stdout", "stderr", "mender_kernel_root", "mender_uboot_root"}
)
CONTRACT = MenderUBootContract(
    DEFAULT_ENV, RUNTIME_VARS, first_save_copy=1, saves_on_console=False, pending_if_nonzero=True
)
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


@dataclass(frozen=True)
class UBootMenderEnv(MenderUBootRules):
    """U-Boot's own C code running Mender's chain, its env at raw offsets of the
    disk or of one partition (`location.partition`)."""

    location: EnvLocation
    name: str = "uboot-mender"
    markers: BootMarkers = MARKERS

    contract: ClassVar[MenderUBootContract] = CONTRACT

    def __post_init__(self) -> None:
        if not self.location.at_offsets:
            raise HarnessConfigError(
                "bootloader 'uboot-mender' keeps its env at raw offsets (of the disk or a "
                "partition), "
                f"but the target gives files {list(self.location.files)}",
                "give 'ab-harness.env: {offsets: [0x400000, 0x800000], size: 0x4000}'",
            )

    def env_from_image(self, disk: Path) -> BootEnv:
        """The env U-Boot would load from the disk image's raw offsets."""
        loc = self.location
        names = loc.copy_names
        source = f"host:{disk.name}@{'+'.join(names)}"
        offsets = loc.disk_offsets(disk)
        parsed = read_env_at(disk, offsets, loc.size, source=source.split(":", 1)[-1])
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
        if which not in ("newest", "oldest", "all"):
            raise HarnessConfigError(
                f"no env copy '{which}'", "corrupt the 'newest', 'oldest' or 'all' copies"
            )
        newest = self.env_from_image(disk).detail.get("copy", names[0])
        if which == "all" or len(names) == 1:
            victims = list(names)
        elif which == "newest":
            victims = [newest]
        else:
            victims = [n for n in names if n != newest]
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
