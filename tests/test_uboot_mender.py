"""The `uboot-mender` contract: what U-Boot 2023.01's own C code and Mender's chain
do from any env (include/bootcount.h, bootcount_env.c, env/common.c, env/mmc.c),
shared with the reference boot script's contract where they agree."""

from __future__ import annotations

import pytest

from harness.bootloaders import KINDS, BootEnv, UBootFileEnv, UBootMenderEnv, bootloader_for
from harness.bootloaders.uboot_mender import HANDOFF
from harness.errors import HarnessConfigError
from harness.targets.target import EnvLocation

OFFSETS = EnvLocation(0, (), 0x4000, (0x400000, 0x800000))
FILES = EnvLocation(1, ("uboot.env", "uboot-redund.env"), 0x4000)
SLOTS = {"A": 2, "B": 3}
STOCK = UBootMenderEnv(OFFSETS)
SCRIPT = UBootFileEnv(FILES)
CANARY = {"mender_saveenv_canary": "1"}


def env(copy: str = "0x400000", flags: int = 4, **vars: str) -> BootEnv:
    base = {"mender_boot_part": "2", "mender_boot_part_hex": "2", "bootlimit": "1"}
    return BootEnv({**base, **vars}, "test", {"copy": copy, "flags": str(flags)})


def test_the_kind_is_registered_and_needs_offsets() -> None:
    assert KINDS["uboot-mender"] is UBootMenderEnv
    assert isinstance(bootloader_for("uboot-mender", OFFSETS), UBootMenderEnv)
    with pytest.raises(HarnessConfigError, match="keeps its env at raw offsets"):
        UBootMenderEnv(FILES)


def test_a_quiet_boot_saves_nothing_and_counts_only_in_ram() -> None:
    expected, _ = STOCK.predict(env(upgrade_available="0", bootcount="5", **CANARY), SLOTS)

    assert expected.transition.saves == 0 and expected.copy_after is None
    assert (expected.slot, expected.bootcount) == ("A", 1)  # env_set_ulong in RAM only
    assert expected.env_after["bootcount"] == "5"


def test_a_trial_boot_stores_the_count_in_the_other_copy() -> None:
    before = env("0x800000", 6, upgrade_available="1", bootcount="0", mender_boot_part="3",
                 mender_boot_part_hex="3", **CANARY)  # fmt: skip

    expected, _ = STOCK.predict(before, SLOTS)

    assert (expected.slot, expected.bootcount, expected.upgrade_available) == ("B", 1, True)
    assert expected.env_after["bootcount"] == "1"
    assert expected.copy_after == ("0x400000", "7")
    # Stock U-Boot's save lines name no flags: the order is judged from the disk.
    assert expected.saves is None


def test_bootlimit_exceeded_runs_altbootcmd_which_switches_and_clears() -> None:
    before = env(upgrade_available="1", bootcount="1", mender_boot_part="3",
                 mender_boot_part_hex="3", **CANARY)  # fmt: skip

    expected, _ = STOCK.predict(before, SLOTS)

    assert expected.transition.rolls_back and expected.slot == "A"
    after = expected.env_after
    assert (after["mender_boot_part"], after["mender_boot_part_hex"]) == ("2", "2")
    assert (after["upgrade_available"], after["bootcount"]) == ("0", "2")
    assert expected.copy_after == ("0x400000", "6")  # two saves: 0x800000 (5), then 0x400000
    assert STOCK.bootcount_after_rollback(1) == 2


def test_bootlimit_zero_means_no_limit() -> None:
    before = env(upgrade_available="1", bootcount="41", bootlimit="0", mender_boot_part="3",
                 mender_boot_part_hex="3", **CANARY)  # fmt: skip

    expected, _ = STOCK.predict(before, SLOTS)

    assert not expected.transition.rolls_back
    assert (expected.slot, expected.env_after["bootcount"]) == ("B", "42")


def test_with_no_valid_copy_the_compiled_in_env_is_saved_to_the_redundant_copy() -> None:
    """env_init marks the default env ENV_VALID, so env_mmc_save's first write goes
    to the redundant copy (flags 1); the reference script writes its first file."""
    broken = BootEnv({}, "test", {"copy": "none"})

    stock, start = STOCK.predict(broken, SLOTS)
    script, _ = SCRIPT.predict(broken, SLOTS)

    assert start["mender_check_saveenv_canary"] == "1"
    assert stock.env_after["mender_saveenv_canary"] == "1" and stock.slot == "A"
    assert stock.copy_after == ("0x800000", "1")
    assert script.copy_after == ("uboot.env", "1")


def test_pending_is_upgrade_available_read_as_a_decimal() -> None:
    """bootcount_env.c: env_get_ulong("upgrade_available", 10, 0) != 0."""
    before = env(upgrade_available="2", bootcount="0", **CANARY)

    assert STOCK.predict(before, SLOTS)[0].transition.pending
    assert not SCRIPT.predict(before, SLOTS)[0].transition.pending


def test_both_contracts_share_one_table() -> None:
    assert STOCK.transitions == SCRIPT.transitions


UBOOT_LINES = (
    b"U-Boot 2023.01 (Jun 22 2026 - 08:38:07 +0000)\r\n"
    b"Loading Environment from MMC... OK\r\n"
    b"Saving Environment to MMC... Writing to redundant MMC(0)... OK\r\n"
    b"Saving Environment to MMC... Writing to MMC(0)... OK\r\n"
    b"Bad Linux ARM64 Image magic!\r\n"
    b"Starting kernel ...\r\n"
)


def test_markers_are_u_boots_own_lines() -> None:
    markers = STOCK.markers

    assert markers.decision is None
    assert markers.banner.search(UBOOT_LINES)
    saves = [m.group("file") for m in markers.save.finditer(UBOOT_LINES)]  # type: ignore[union-attr]
    assert saves == [b"redundant MMC(0)", b"MMC(0)"]
    assert markers.no_kernel.search(UBOOT_LINES)  # type: ignore[union-attr]
    assert HANDOFF.search(UBOOT_LINES)
    # A failed save is no save.
    assert not markers.save.search(  # type: ignore[union-attr]
        b"\r\nSaving Environment to MMC... Writing to MMC(0)... failed\r\n"
    )
