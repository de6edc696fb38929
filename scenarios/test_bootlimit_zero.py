"""bootlimit=0 switches U-Boot's automatic rollback off: an update whose
health check fails stays pending on the new slot, boot after boot, counted
but never rolled back (docs/guide/reference-images.md says when a fleet wants that)."""

import pytest

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.ab_needs("bootlimit-n", "block-layer", "health-check"),
]


def test_bootlimit_zero_keeps_an_unhealthy_update_pending(booted, push, shell, payloads, slots):
    shell.exec0("fw_setenv bootlimit 0")

    assert push.install(payloads["v2-bad"]).ok
    boots = booted.reboot_and_watch(3)

    assert [b.bootloader_slot for b in boots] == ["B", "B", "B"]
    assert [b.bootcount for b in boots] == [1, 2, 3]
    assert all(b.upgrade_available for b in boots)
    assert [b.failure for b in boots] == ["health check failed"] * 3
    env = boots[-1].env_after
    assert env is not None
    assert (env.boot_part, env.upgrade_available, env.bootcount) == (slots["B"], True, 3)
