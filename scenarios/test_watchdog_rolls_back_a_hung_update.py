"""An update whose userspace hangs in its first boot: no health check ever
runs and nothing reboots from inside. Only the hardware watchdog (QEMU's
i6300esb, fed by a watchdog daemon until everything stops) resets the board;
U-Boot counts that boot and rolls back to A."""

import pytest

from harness.judge.verdict import outcome

pytestmark = [pytest.mark.qemu, pytest.mark.ab_needs("watchdog")]


def test_hung_userspace_is_reset_by_the_watchdog_and_rolls_back(
    booted, push, observe, faults, payloads
):
    slot_a_before = observe.slot_sha256("A")

    assert push.install(payloads["v2-hang"]).ok
    with faults.watchdog_reset() as watchdog:
        boots = booted.reboot(max_boots=2)
    result = outcome("A", boots, observe.env_host("after rollback"), observe.client())

    assert watchdog.require_fired().facts["actions"] == ["reset"]
    assert result.rolled_back, result.describe()
    assert result.bootloader_slots == ["B", "A"]
    hung = result.boots[0]
    assert not hung.reached_shell and hung.reset_by == "watchdog", hung
    assert result.boots[-1].upgrade_available is False
    assert observe.booted_slot().slot == "A"
    assert observe.slot_sha256("A") == slot_a_before
