"""Faults on the real image: a live power cut placed mid-rootfs-write, and write
I/O errors on the inactive slot. Each test asserts the fault's own proof."""

from contextlib import contextmanager

import pytest

from harness.delivery.push import UsbKeyPusher
from harness.faults import FaultNotInjected
from harness.images import default_cache_dir
from harness.machines.qmp import QmpChannel
from harness.plugin import option

MIB = 1 << 20
# Read now: pytester points HOME at its own directory, which moves ~/.cache.
DEFAULT_CACHE = default_cache_dir()

pytestmark = pytest.mark.qemu


@contextmanager
def pusher_after_power_cycle(ab_live, shell):
    """The push fixture's QMP session belongs to the QEMU that was cut; the new one
    needs its own (until the push fixture follows power cycles itself)."""
    qemu = ab_live.qemu
    with QmpChannel.connect(qemu.qmp_socket) as qmp:
        yield UsbKeyPusher(qmp, shell, qemu.payload_ports)


@pytest.mark.parametrize(
    "percent",
    [pytest.param(10, marks=pytest.mark.nightly), 50, pytest.param(99, marks=pytest.mark.nightly)],
)
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
    assert (env.boot_part, env.upgrade_available) == (2, False)
    assert [b.running_slot for b in booted.reboot()] == ["A"]
    assert observe.env_host("after reboot").upgrade_available is False


def test_power_cut_now_kills_qemu_and_the_device_boots_a_again(booted, faults):
    cut = faults.power_cut_now()

    proof = cut.require_fired()
    assert proof.facts["pid_gone"] and proof.facts["signal"] == "SIGKILL"
    assert [b.running_slot for b in booted.power_on()] == ["A"]


def test_a_cut_whose_byte_count_is_never_reached_fails_loudly(booted, faults):
    cut = faults.power_cut_after("B", nbytes=1 << 20)
    with pytest.raises(FaultNotInjected, match=r"only \d+ of 1048576 bytes were written"), cut:
        pass  # nothing writes slot B
    assert not cut.proof().fired
    faults.discard(cut)  # asserted above; no second failure at teardown


TEARDOWN_TEST = """
def test_forgets_to_use_the_cut(faults):
    faults.power_cut_after("B", nbytes=4096)
"""


def test_an_unused_fault_fails_the_test_at_teardown(pytester, pytestconfig):
    pytester.makepyfile(TEARDOWN_TEST)
    cache = option(pytestconfig, "ab_cache") or str(DEFAULT_CACHE)
    result = pytester.runpytest_subprocess(
        "-p", "no:labgrid", f"--ab-cache={cache}", f"--ab-results={pytester.path}/r", timeout=120
    )

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fault not injected: power-cut-after-bytes: never armed*"])
    assert list((pytester.path / "r" / "latest").glob("*/fault-01-power-cut-after-bytes.json"))
