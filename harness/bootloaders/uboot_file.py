"""U-Boot with its env in one or two (redundant) files on a FAT partition,
running Mender's contract (`uboot_contract`) from the reference boot script.

The script (qemu-images/arm64-uboot/boot.cmd) does in hush what U-Boot's C
code does on a Mender board (the count, the limit, altbootcmd, the saves),
and prints a decision line and a line per save, which the markers read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.bootloaders.protocol import (
    LINE_START,
    BootEnv,
    BootMarkers,
)
from harness.bootloaders.uboot_contract import (
    MENDER_DEFAULT_ENV,
    MenderUBootContract,
    MenderUBootRules,
)
from harness.bootloaders.uboot_env import fw_printenv, victims_of
from harness.device.shell import ShellLike
from harness.envformat import EnvCorrupt, parse_env, parse_env_copies
from harness.errors import DeviceError
from harness.images.diskimage import read_partition_files, write_partition_file
from harness.targets.target import EnvLocation

# Variables U-Boot sets itself at every start (after loading the env), so a
# save writes the running board's value, whatever the env said: an env taken
# from another board (a field bundle) comes back with this board's value.
RUNTIME_VARS = ("fdtcontroladdr",)
DEFAULT_ENV = MENDER_DEFAULT_ENV
# The boot script's first save with no valid copy writes the first file.
CONTRACT = MenderUBootContract(DEFAULT_ENV, frozenset(RUNTIME_VARS), first_save_copy=0)


MARKERS = BootMarkers(
    banner=re.compile(LINE_START + rb"U-Boot \d{4}\.\d{2}"),
    decision=re.compile(
        LINE_START + rb"ab-boot: slot=(?P<slot>\w+) part=\S+ bootcount=(?P<bootcount>\w*) "
        rb"upgrade_available=(?P<upgrade_available>\w*)(?=\s)"
    ),
    save=re.compile(
        LINE_START + rb"ab-boot: saveenv \((?P<why>\w+)\) wrote (?P<file>\S+) "
        rb"flags=0x(?P<flags>[0-9a-fA-F]+)(?=[\r\n])"
    ),
    no_kernel=re.compile(LINE_START + rb"ab-boot: kernel of slot (?P<slot>\w+) did not boot"),
    fatal=re.compile(LINE_START + rb"ab-(?:boot|initramfs): FATAL (?P<why>[^\r\n]*)"),
    # U-Boot's own line (boot_jump_linux's announce), printed by booti/bootz/bootm
    # after every save of the boot: any U-Boot prints it, the reference script or not.
    handoff=re.compile(LINE_START + rb"Starting kernel \.\.\."),
)


@dataclass(frozen=True)
class UBootFileEnv(MenderUBootRules):
    """U-Boot with its env in one or two (redundant) files on a FAT partition."""

    location: EnvLocation
    name: str = "uboot"
    markers: BootMarkers = MARKERS

    contract: ClassVar[MenderUBootContract] = CONTRACT

    def env_from_image(self, disk: Path) -> BootEnv:
        """Read the env straight out of the disk image, as the bootloader would."""
        blobs = read_partition_files(disk, self.location.partition, self.location.files)
        where = f"{disk.name} p{self.location.partition}:{'+'.join(self.location.files)}"
        return self.env_from_files(blobs, f"host:{where}")

    def env_from_files(self, blobs: Sequence[bytes], source: str) -> BootEnv:
        """The env from the raw bytes of its files (in `location.files` order),
        wherever they were read: the host's disk image, or a board's shell."""
        where = source.split(":", 1)[-1]
        # One file is U-Boot's plain layout (crc | data); two are the redundant
        # copies (crc | flags | data), as CONFIG_SYS_REDUNDAND_ENVIRONMENT stores them.
        # Only `size` bytes count, as U-Boot reads CONFIG_ENV_SIZE of each file.
        size = self.location.size
        if len(blobs) == 1:
            parsed = parse_env(blobs[0][:size], size=size, source=where)
        else:
            parsed = parse_env_copies([b[:size] for b in blobs], source=where, size=size)
        used = self.location.files[parsed.copy_index]
        detail = {"copy": used}
        if parsed.flags is not None:
            detail["flags"] = str(parsed.flags)
        return BootEnv(parsed.vars, source, detail)

    def corrupt_env_copy(self, disk: Path, which: str) -> dict[str, object]:
        """Flip a byte in the data area of the chosen copies (their CRC no longer
        matches), then read the env back to prove U-Boot will reject them."""
        files = self.location.files
        newest = self.env_from_image(disk).detail.get("copy", files[0])
        victims = victims_of(which, files, newest)
        blobs = dict(
            zip(files, read_partition_files(disk, self.location.partition, files), strict=True)
        )
        for name in victims:
            blob = bytearray(blobs[name])
            blob[16] ^= 0xFF  # inside the data area of either layout
            write_partition_file(disk, self.location.partition, name, bytes(blob))
        try:
            after = self.env_from_image(disk)
            still_valid = [after.detail.get("copy")]
        except EnvCorrupt:
            still_valid = []
        if any(v in still_valid for v in victims):
            raise DeviceError(f"corrupting {victims} did not make them invalid", "harness bug")
        return {"corrupted": victims, "newest_before": newest, "valid_after": still_valid}

    def env_from_device(self, shell: ShellLike) -> BootEnv:
        """Read the env on the device with libubootenv's fw_printenv."""
        return fw_printenv(shell)
