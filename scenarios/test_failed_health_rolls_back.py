"""A bad update: B fails its health check until the boot limit, then the
bootloader's altbootcmd puts the device back on A, with nothing lost."""

import pytest

from harness.judge.verdict import outcome

pytestmark = [pytest.mark.qemu, pytest.mark.ab_needs("health-check")]


@pytest.mark.parametrize(
    "bootlimit",
    [1, pytest.param(3, marks=[pytest.mark.nightly, pytest.mark.ab_needs("bootlimit-n")])],
)
def test_failed_health_check_rolls_back_to_a(
    booted, push, observe, shell, payloads, bootloader, bootlimit, slots
):
    if "bootlimit" in bootloader.variables:  # else the contract's own limit: one try (GRUB's)
        shell.exec0(f"fw_setenv bootlimit {bootlimit}")
    shell.exec0("echo 'written before the update' > /data/precious && sync")
    slot_a_before, data_before = observe.slot_sha256("A"), observe.data_manifest()

    assert push.install(payloads["v2-bad"]).ok
    boots = booted.reboot(max_boots=bootlimit + 1)
    result = outcome("A", boots, observe.env_host("after rollback"), observe.client())

    assert result.rolled_back, result.describe()
    assert result.bootloader_slots == ["B"] * bootlimit + ["A"]
    after_rollback = bootloader.bootcount_after_rollback(bootlimit)
    if "bootcount" in bootloader.variables:  # RAUC's GRUB contract counts in tries, not here
        assert result.bootcounts == [*range(1, bootlimit + 1), after_rollback]
    assert result.health[:-1] == ["fail"] * bootlimit
    # The rollback boot's own decision already says nothing is pending.
    assert result.boots[-1].upgrade_available is False
    # U-Boot's altbootcmd leaves the count it rolled back at; Mender's GRUB resets it.
    assert (result.env.boot_part, result.env.bootcount) == (slots["A"], after_rollback)
    assert observe.booted_slot().slot == "A"
    assert observe.slot_sha256("A") == slot_a_before
    assert observe.data_manifest() == data_before
