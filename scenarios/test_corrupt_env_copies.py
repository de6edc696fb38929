"""A corrupted env copy: the bootloader reads the other one. After a committed update
that other copy must say "committed" too, or the device silently goes back
to the old slot (see docs/findings.md); with both copies gone, U-Boot
uses Mender's default env — slot A — and saves it again. Nothing on /data is
lost either way."""

import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.ab_needs("block-layer")]


@pytest.fixture
def committed_to_b(booted, push, payloads, shell, observe):
    shell.exec0("echo 'written before the update' > /data/precious && sync")
    data = observe.data_manifest()
    assert push.install(payloads["v2"]).ok
    assert [b.running_slot for b in booted.reboot()] == ["B"]
    assert observe.env_host("committed").upgrade_available is False
    return data


@pytest.mark.ab_needs("env-redundant")
@pytest.mark.ab_finding("one-commit-write-downgrades")
def test_newest_copy_corrupted_after_a_commit_keeps_the_update(
    committed_to_b, booted, observe, faults, payloads, slots
):
    booted.power_cut()
    proof = faults.corrupt_env_copy("newest")
    boots = booted.power_on()

    assert proof.facts["valid_after"] != proof.facts["corrupted"]
    booted_as = [(b.bootloader_slot, b.running_slot, b.version) for b in boots]
    assert booted_as == [("B", "B", "2")], f"the committed update was rolled back: {booted_as}"
    env = observe.env_host("after power on")
    assert (env.boot_part, env.upgrade_available) == (slots["B"], False)
    assert observe.data_manifest() == committed_to_b


@pytest.mark.ab_needs("env-default-saved")
def test_both_copies_corrupted_fall_back_to_the_default_env(
    committed_to_b, booted, observe, faults, payloads, slots, ab_target_spec
):
    booted.power_cut()
    faults.corrupt_env_copy("all")
    boots = booted.power_on()

    # The oracle judged the boot from a disk with no valid copy: the default env's slot.
    fallback = ab_target_spec.env.default_slot or next(iter(slots))
    assert [(b.bootloader_slot, b.running_slot) for b in boots] == [(fallback, fallback)]
    assert all(b.judgement is not None and b.judgement.verdict == "ok" for b in boots)
    env = observe.env_host("repaired")
    assert (env.boot_part, env.upgrade_available, env.get("mender_saveenv_canary")) == (
        slots[fallback],
        False,
        "1",
    )
    # The committed v2 is still in B, untouched: the fallback chose, it did not destroy.
    assert observe.slot_sha256("B", payloads["v2"].size) == payloads["v2"].sha256
    assert observe.data_manifest() == committed_to_b
