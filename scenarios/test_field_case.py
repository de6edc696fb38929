"""A field failure as a regression test: a device that lost its update agent's
record of the install sat on B with upgrade_available=1, bootcount=1 (its
health check passed, its commit was refused). The bundle captured from it
says so; started from that bundle, the next boot must roll back to A."""

import pytest

pytestmark = pytest.mark.qemu


@pytest.mark.ab_from_bundle("bundles/lost-install-record")
def test_a_device_left_on_trial_rolls_back_at_its_next_boot(field_bundle, booted, observe, slots):
    assert (field_bundle.env_device["upgrade_available"], field_bundle.running_slot) == ("1", "B")

    [rollback] = booted.history
    assert (rollback.bootloader_slot, rollback.upgrade_available) == ("A", False)
    assert observe.booted_slot().version == "1"
    assert observe.env_host("after the rollback").boot_part == slots["A"]
