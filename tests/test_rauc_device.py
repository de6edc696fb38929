"""The real RAUC (Debian's rauc 1.8 and `rauc service`) on the x86_64 GRUB image
with RAUC's documented grub.cfg: where its A/B design surprises its users.

RAUC's GRUB script gives every slot one try per boot, committed or not: the
script marks the slot it boots tried (`<slot>_TRY=1`) and only the health
path's `rauc status mark-good` clears it. So the try is spent on every boot,
long after the update was accepted, and any boot that ends before mark-good
(a power cut, a hang, a slow service) sends the next boot to the other
slot: the release before the update, with nothing on the device asking for
it. The env is judged on the host after each boot; the slots are hashed."""

from __future__ import annotations

import pytest

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.nightly,
    pytest.mark.ab_client("rauc"),
    pytest.mark.ab_target("qemu-x86_64-grub-rauc"),
]


def test_a_power_cut_in_any_boot_of_a_committed_slot_falls_back_to_the_old_release(
    booted, push, observe, faults, update_client, shell, payloads
):
    assert push.install(payloads["v2"]).ok
    assert [(b.running_slot, b.version, b.health) for b in booted.reboot()] == [("B", "2", "pass")]
    committed = observe.env_host("committed")
    assert (committed.boot_part, committed.pending) == (3, False)
    assert (committed.get("ORDER"), committed.get("B_OK"), committed.get("B_TRY")) == (
        "B A",
        "1",
        "0",
    )
    # An ordinary boot of the accepted release, not its first: power is lost
    # after Linux started and before the health path marked the slot good.
    with faults.power_cut_in_first_boot_of("B"):
        booted.reboot()
    cut = observe.env_host("after the cut")
    assert (cut.get("B_OK"), cut.get("B_TRY")) == ("1", "1")

    boots = booted.power_on()

    # GRUB skips B (tried) and boots A: the release the update replaced.
    assert [(b.running_slot, b.version) for b in boots] == [("A", "1")]
    status = update_client.read_status(shell)[1]
    assert status is not None and (status.booted, status.primary) == ("A", "A")
    b = status.slot("B")
    # RAUC now calls the accepted release bad, though it never failed.
    assert b is not None and (b.bundle_version, b.boot_status) == ("2", "bad")
    assert observe.slot_sha256("B", payloads["v2"].size) == payloads["v2"].sha256
