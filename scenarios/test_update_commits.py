"""A good update: B boots, its health check passes, the update commits and sticks."""

import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.ab_needs("health-check")]


def test_good_update_commits_and_survives_reboots(booted, push, observe, payloads, slots):
    assert observe.booted_slot().slot == "A"

    install = push.install(payloads["v2"])
    assert install.ok, install.output

    first = booted.reboot()
    assert [(b.running_slot, b.version, b.health) for b in first] == [("B", "2", "pass")]
    assert observe.env_device("after commit").upgrade_available is False

    for _ in range(2):
        assert [b.running_slot for b in booted.reboot()] == ["B"]

    env = observe.env_host("final")
    # Mender's commit clears only upgrade_available: the trial boot's count stays.
    assert (env.boot_part, env.upgrade_available, env.bootcount) == (slots["B"], False, 1)
    # The client agrees: it reports v2 installed, nothing pending, and answers clean.
    assert observe.client().disagreement(env.upgrade_available) is None
