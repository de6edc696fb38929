"""Updates whose new slot never reaches a shell: the bootloader counts each failed
boot (a reset when the kernel cannot be loaded, a kernel panic when init
dies) and rolls back once the count passes bootlimit."""

import pytest

from harness.judge.verdict import outcome

pytestmark = pytest.mark.qemu


@pytest.mark.ab_finding("rauc-untried-slot-stays-ok")
@pytest.mark.parametrize(
    ("payload", "failure"),
    [
        ("v2-broken-kernel", "the bootloader could not start"),
        ("v2-panic-init", "kernel panic"),
    ],
    ids=["broken-kernel", "panic-init"],
)
def test_new_slot_that_never_boots_rolls_back_to_a(
    booted, push, observe, payloads, bootloader, payload, failure, slots
):
    slot_a_before = observe.slot_sha256("A")

    assert push.install(payloads[payload]).ok
    boots = booted.reboot(max_boots=2)
    result = outcome("A", boots, observe.env_host("after rollback"), observe.client())

    assert result.rolled_back, result.describe()
    assert result.bootloader_slots == ["B", "A"]
    tried = result.boots[0]
    assert not tried.reached_shell and failure in (tried.failure or ""), tried
    assert result.boots[-1].upgrade_available is False
    rolled_back_at = bootloader.bootcount_after_rollback(1)
    assert (result.env.boot_part, result.env.bootcount) == (slots["A"], rolled_back_at)
    assert observe.booted_slot().slot == "A"
    assert observe.slot_sha256("A") == slot_a_before
