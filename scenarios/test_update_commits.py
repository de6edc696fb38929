"""A good update: B boots, its health check passes, the update commits and sticks."""

import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.ab_needs("health-check")]


def test_good_update_commits_and_survives_reboots(
    booted, push, observe, payloads, slots, bootloader
):
    assert observe.booted_slot().slot == "A"

    install = push.install(payloads["v2"])
    assert install.ok, install.output

    first = booted.reboot()
    assert [(b.running_slot, b.version, b.health) for b in first] == [("B", "2", "pass")]
    assert observe.env_device("after commit").pending is False

    for _ in range(2):
        assert [b.running_slot for b in booted.reboot()] == ["B"]

    env = observe.env_host("final")
    # What the commit leaves of the trial boot's count is the contract's mark-good:
    # Mender's clears only upgrade_available (the count stays), SWUpdate's resets it.
    # A contract with no count (RAUC's tries) leaves none.
    counted = "bootcount" in bootloader.variables
    left = (
        int(bootloader.mark_good({"bootcount": "1"}, "B").get("bootcount", "1")) if counted else 0
    )
    assert (env.boot_part, env.pending, env.bootcount) == (slots["B"], False, left)
    # The client agrees: it reports v2 installed, nothing pending, and answers clean.
    assert observe.client().disagreement(env.pending) is None
