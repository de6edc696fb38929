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

from dataclasses import dataclass
from typing import ClassVar

from harness.bootloaders.protocol import BootMarkers
from harness.bootloaders.uboot_contract import (
    MENDER_DEFAULT_ENV,
    MenderUBootContract,
    MenderUBootRules,
)
from harness.bootloaders.uboot_env import HANDOFF, MARKERS, OffsetsStorage, require_offsets
from harness.targets.target import EnvLocation

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
__all__ = ["CONTRACT", "HANDOFF", "MARKERS", "UBootMenderEnv"]


@dataclass(frozen=True)
class UBootMenderEnv(MenderUBootRules, OffsetsStorage):
    """U-Boot's own C code running Mender's chain, its env at raw offsets of the
    disk or of one partition (`location.partition`)."""

    location: EnvLocation
    name: str = "uboot-mender"
    markers: BootMarkers = MARKERS

    contract: ClassVar[MenderUBootContract] = CONTRACT

    def __post_init__(self) -> None:
        require_offsets(self.location, self.name)
