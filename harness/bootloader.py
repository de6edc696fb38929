"""The bootloader contract: where the env lives, what its variables mean,
and how a boot announces itself on the console.

Mender's variable names are the contract (`mender_boot_part`,
`upgrade_available`, `bootcount`, `bootlimit`); a bootloader implementation
says where those variables are stored and how to read them from the host
(straight out of the disk image) and from the running device. U-Boot is
the first implementation; GRUB and real boards are additions behind the
same `Bootloader` protocol.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from harness.diskimage import read_partition_files, write_partition_file
from harness.envformat import EnvCorrupt, parse_env, parse_env_copies
from harness.errors import DeviceError, HarnessConfigError
from harness.shell import ShellLike
from harness.target import EnvLocation


@dataclass(frozen=True)
class BootEnv:
    """A snapshot of the bootloader env, with where it was read from."""

    vars: Mapping[str, str]
    source: str
    detail: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vars", MappingProxyType(dict(self.vars)))
        object.__setattr__(self, "detail", MappingProxyType(dict(self.detail)))

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.vars.get(key, default)

    def _number(self, key: str, default: int) -> int:
        # Decimal, read as U-Boot's env_get_ulong(name, 10, ...) reads it: the
        # leading digits count, anything else reads as 0.
        raw = self.vars.get(key)
        if raw is None or raw == "":
            return default
        digits = re.match(r"\d*", raw.strip())
        return int(digits.group()) if digits and digits.group() else 0

    @property
    def boot_part(self) -> int | None:
        raw = self.vars.get("mender_boot_part")
        return int(raw) if raw else None

    @property
    def upgrade_available(self) -> bool:
        return self.vars.get("upgrade_available", "0") == "1"

    @property
    def bootcount(self) -> int:
        return self._number("bootcount", 0)

    @property
    def bootlimit(self) -> int | None:
        return self._number("bootlimit", -1) if "bootlimit" in self.vars else None

    def as_dict(self) -> dict[str, str]:
        return dict(sorted(self.vars.items()))


@dataclass(frozen=True)
class BootMarkers:
    """Console lines that delimit and describe a boot (regexes over bytes).

    `banner` starts a boot; `decision` is the bootloader saying which slot it
    chose (groups: slot, bootcount, upgrade_available), absent on stock boards.
    `save` is one env save (groups: why, file, flags as hex); `no_kernel` the
    bootloader failing to start the chosen slot's kernel (group: slot);
    `fatal` the bootloader giving up (group: why).
    """

    banner: re.Pattern[bytes]
    decision: re.Pattern[bytes] | None
    save: re.Pattern[bytes] | None = None
    no_kernel: re.Pattern[bytes] | None = None
    fatal: re.Pattern[bytes] | None = None


class Bootloader(Protocol):
    """A bootloader's side of the A/B contract."""

    @property
    def name(self) -> str: ...

    @property
    def markers(self) -> BootMarkers: ...

    def env_from_image(self, disk: Path) -> BootEnv: ...

    def env_from_device(self, shell: ShellLike) -> BootEnv: ...

    def corrupt_env_copy(self, disk: Path, which: str) -> dict[str, object]:
        """Corrupt env copies on the disk ("newest", "oldest" or "all") and
        return the proof: which copies, and that they no longer read as valid."""
        ...


# A lookbehind, not a consumed "\n": SerialRecorder matches the banner at the
# start of a line (after its CRs), where a pattern that must begin with "\n"
# only matched when a blank line came first. A CR also ends a line here,
# for UARTs that send "\n\r".
LINE_START = rb"(?:^|(?<=[\r\n]))\r*"


@dataclass(frozen=True)
class UBootFileEnv:
    """U-Boot with its env in one or two (redundant) files on a FAT partition."""

    location: EnvLocation
    name: str = "uboot"
    # bootlimit is a plain env variable the boot script compares against.
    capabilities: frozenset[str] = frozenset({"bootlimit-n"})
    markers: BootMarkers = BootMarkers(
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
    )

    def env_from_image(self, disk: Path) -> BootEnv:
        """Read the env straight out of the disk image, as the bootloader would."""
        blobs = read_partition_files(disk, self.location.partition, self.location.files)
        where = f"{disk.name} p{self.location.partition}:{'+'.join(self.location.files)}"
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
        return BootEnv(parsed.vars, f"host:{where}", detail)

    def corrupt_env_copy(self, disk: Path, which: str) -> dict[str, object]:
        """Flip a byte in the data area of the chosen copies (their CRC no longer
        matches), then read the env back to prove U-Boot will reject them."""
        files = self.location.files
        if which not in ("newest", "oldest", "all"):
            raise HarnessConfigError(
                f"no env copy '{which}'", "corrupt the 'newest', 'oldest' or 'all' copies"
            )
        newest = self.env_from_image(disk).detail.get("copy", files[0])
        if which == "all" or len(files) == 1:
            victims = list(files)
        elif which == "newest":
            victims = [newest]
        else:
            victims = [f for f in files if f != newest]
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
        code, out = shell.exec("fw_printenv")
        if code != 0:
            lines = out.strip().splitlines()
            last = lines[-1][-200:] if lines else "no output"
            raise DeviceError(
                f"fw_printenv failed on the device (exit {code}): {last}",
                "check /etc/fw_env.config and that the env copies are intact",
            )
        pairs = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return BootEnv(pairs, "device:fw_printenv")


def bootloader_for(kind: str, location: EnvLocation) -> Bootloader:
    """The contract implementation named in the target YAML."""
    if kind == "uboot":
        return UBootFileEnv(location)
    raise DeviceError(f"no bootloader contract named '{kind}'", "use bootloader: uboot")
