"""Rollback works from either slot: after a committed update to B, a bad
second update lands in A, fails its health check, and B keeps running."""

import pytest

from harness.judge.verdict import outcome

pytestmark = [pytest.mark.qemu, pytest.mark.ab_needs("health-check")]


def test_bad_update_from_b_rolls_back_to_b(booted, push, observe, payloads, bootloader, slots):
    assert push.install(payloads["v2"]).ok
    assert [b.running_slot for b in booted.reboot()] == ["B"]
    slot_b_before = observe.slot_sha256("B")

    assert push.install(payloads["v2-bad"]).ok
    boots = booted.reboot(max_boots=2)
    result = outcome("B", boots, observe.env_host("after rollback to B"), observe.client())

    assert result.rolled_back, result.describe()
    assert result.bootloader_slots == ["A", "B"]
    assert (result.env.boot_part, result.env.bootcount) == (
        slots["B"],
        bootloader.bootcount_after_rollback(1),
    )
    assert observe.booted_slot().version == "2"
    assert observe.slot_sha256("B") == slot_b_before
