"""Faults on the real image: a live power cut placed mid-rootfs-write, and write
I/O errors on the inactive slot. Each test asserts the fault's own proof."""

from contextlib import contextmanager

import pytest

from harness.push import UsbKeyPusher
from harness.qmp import QmpChannel

MIB = 1 << 20

pytestmark = pytest.mark.qemu


@contextmanager
def pusher_after_power_cycle(ab_live, shell):
    """The push fixture's QMP session belongs to the QEMU that was cut; the new one
    needs its own (until the push fixture follows power cycles itself)."""
    qemu = ab_live.qemu
    with QmpChannel.connect(qemu.qmp_socket) as qmp:
        yield UsbKeyPusher(qmp, shell, qemu.hotplug_port_ids)


@pytest.mark.parametrize("percent", [10, 50, 99])
def test_power_cut_mid_rootfs_write_keeps_a_and_a_retry_succeeds(
    booted, push, observe, faults, payloads, ab_live, shell, percent
):
    payload = payloads["v2"]
    env_before = observe.env_host("before the update")

    with faults.power_cut_after("B", percent=percent, of=payload.size) as cut:
        push.install(payload)
    proof = cut.require_fired()
    boots = booted.power_on()

    assert abs(proof.facts["error_bytes"]) <= MIB, proof
    assert proof.facts["landed_bytes"] < payload.size, "the cut came after the whole write"
    assert proof.facts["pid_gone"]
    assert [b.running_slot for b in boots] == ["A"]
    env = observe.env_host("after the power cut")
    assert env.as_dict() == env_before.as_dict()

    with pusher_after_power_cycle(ab_live, shell) as retry:
        assert retry.install(payload).ok
    boots = booted.reboot()
    assert [(b.bootloader_slot, b.running_slot, b.health) for b in boots] == [("B", "B", "pass")]
    env = observe.env_device("after the retried update")
    assert (env.boot_part, env.upgrade_available) == (3, False)


def test_write_errors_on_the_inactive_slot_fail_the_install_cleanly(
    booted, push, observe, faults, payloads
):
    with faults.write_errors("B") as errors:
        report = push.install(payloads["v2"])
    proof = errors.require_fired()

    assert not report.ok and "write to /dev/vda3 failed" in report.output, report.output
    assert proof.facts["failed_wr_operations"] > 0 and proof.facts["block_io_error_events"] > 0
    env = observe.env_host("after the failed install")
    assert (env.boot_part, env.upgrade_available, env.bootcount) == (2, False, 0)
    assert [b.running_slot for b in booted.reboot()] == ["A"]
    assert observe.env_host("after reboot").upgrade_available is False
