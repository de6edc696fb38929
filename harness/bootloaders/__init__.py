"""Bootloader contracts, one module each, behind one protocol (`protocol.py`):
Mender's (U-Boot from a script or its own C code, GRUB), RAUC's (U-Boot, GRUB)
and SWUpdate's (U-Boot).

`bootloader_for(kind, location)` picks the implementation a target YAML's
`bootloader:` names; nothing else in the harness asks which one it is.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.bootloaders.grub_mender import GrubMenderEnv
from harness.bootloaders.grub_rauc import GrubRaucEnv
from harness.bootloaders.protocol import (
    LINE_START,
    BootEnv,
    Bootloader,
    BootMarkers,
    ContractReading,
    Expected,
    Transition,
    read_under,
)
from harness.bootloaders.uboot_file import UBootFileEnv
from harness.bootloaders.uboot_mender import UBootMenderEnv
from harness.bootloaders.uboot_rauc import UBootRaucEnv
from harness.bootloaders.uboot_swupdate import UBootSwupdateEnv
from harness.errors import DeviceError
from harness.target import EnvLocation

KINDS: dict[str, Callable[[EnvLocation], Bootloader]] = {
    "uboot": UBootFileEnv,
    "grub-mender": GrubMenderEnv,
    "uboot-mender": UBootMenderEnv,
    "uboot-rauc": UBootRaucEnv,
    "grub-rauc": GrubRaucEnv,
    "uboot-swupdate": UBootSwupdateEnv,
}

__all__ = [
    "KINDS",
    "LINE_START",
    "BootEnv",
    "BootMarkers",
    "Bootloader",
    "ContractReading",
    "Expected",
    "GrubMenderEnv",
    "GrubRaucEnv",
    "Transition",
    "UBootFileEnv",
    "UBootMenderEnv",
    "UBootRaucEnv",
    "UBootSwupdateEnv",
    "bootloader_for",
    "read_under",
]


def bootloader_for(kind: str, location: EnvLocation) -> Bootloader:
    """The contract implementation named in the target YAML."""
    cls = KINDS.get(kind)
    if cls is None:
        raise DeviceError(
            f"no bootloader contract named '{kind}'", f"use bootloader: {' or '.join(KINDS)}"
        )
    return cls(location)
