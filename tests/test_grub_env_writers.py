"""On the real x86_64 GRUB image: what GRUB's own save_env writes and what
the guest's grub-editenv (ab-env, Mender's lock protocol) writes are both what
the host reader reads, and ab-env writes them in place; a copy torn mid-edit
on the device is caught by its lock: GRUB boots from the other copy and
repairs the torn one; and a copy left empty cannot be repaired by GRUB, which
clears its lock all the same (the oracle predicts both)."""

import pytest

from harness.bootloaders.grub_mender import FILES
from harness.crashsweep.disklayout import DiskLayout

pytestmark = [pytest.mark.qemu, pytest.mark.ab_target("qemu-x86_64-grub")]

GRUBENV = "/uboot/grub-mender-grubenv"


def _clusters(disk, name):
    """The byte ranges of the ESP that hold file `name` (from its FAT chain)."""
    esp = DiskLayout.read(disk).partitions[0]
    assert esp.fat is not None
    fat = esp.fat
    return [
        (start, end)
        for start, end, owner in zip(fat.run_starts, fat.run_ends, fat.run_owners, strict=True)
        if owner == name
    ]


@pytest.mark.nightly
def test_grub_save_env_and_guest_grub_editenv_write_what_the_host_reads(
    booted, push, shell, observe, payloads, ab_live
):
    # The guest's writer: the agent's install through ab-env (grub-editenv).
    # ab-env writes every block over the file's own clusters: grub-editenv on
    # the file itself would truncate it and write it anew elsewhere, and a
    # power cut in between leaves an empty file GRUB's save_env cannot rewrite.
    clusters = {f: _clusters(ab_live.disk, f) for f in FILES}
    assert all(clusters.values()), clusters
    assert push.install(payloads["v2-bad"]).ok
    assert {f: _clusters(ab_live.disk, f) for f in FILES} == clusters
    host = observe.env_host("after install")
    device = observe.env_device("after install")
    wanted = "bootcount=0 mender_boot_part=3 upgrade_available=1"
    assert (host.detail["env1"], host.detail["env2"]) == (wanted, wanted)
    assert (host.detail["lock1"], host.detail["lock2"]) == ("0", "0")
    assert dict(device.vars) == dict(host.vars)

    # GRUB's writer: save_env of the trial boot's bootcount, read with the guest
    # paused right after GRUB's decision (v2-bad commits nothing).
    trial = booted.reboot_and_watch(1)[0]
    after = trial.env_after
    assert after is not None and trial.bootloader_slot == "B"
    counted = "bootcount=1 mender_boot_part=3 upgrade_available=1"
    assert (after.detail["env1"], after.detail["env2"]) == (counted, counted)
    assert [s.file.rsplit("/", 2)[-2] for s in trial.saves] == [
        "mender_grubenv2",
        "mender_grubenv1",
    ]


def test_a_copy_torn_on_the_device_is_caught_by_its_lock(booted, shell, observe, ab_live):
    # An edit of copy 1 cut by power loss: lock 1 was set, the env half written.
    shell.exec0(
        f"grub-editenv {GRUBENV}/mender_grubenv1/lock set editing=1 && "
        f"grub-editenv {GRUBENV}/mender_grubenv1/env set mender_boot_part=3 bootcount=7 && sync"
    )
    booted.power_cut()
    before = observe.env_host("torn copy 1")
    assert before.detail["copy"].endswith("mender_grubenv2/env")
    assert before.boot_part == 2

    boots = booted.power_on()

    assert [(b.bootloader_slot, b.running_slot) for b in boots] == [("A", "A")]
    assert [s.why for s in boots[0].saves] == ["restore"]
    assert "env copy 1 torn (lock editing=1), restoring it from copy 2" in ab_live.recorder.tail(
        300
    )
    repaired = observe.env_host("repaired")
    assert (repaired.detail["lock1"], repaired.detail["copy"].endswith("grubenv1/env")) == (
        "0",
        True,
    )
    assert repaired.detail["env1"] == repaired.detail["env2"]


@pytest.mark.nightly  # tests/test_grub_mender.py checks the same rule on the host, cheaply
def test_grub_cannot_restore_an_emptied_copy_and_still_clears_its_lock(
    booted, shell, observe, ab_live
):
    # The state a power cut inside grub-editenv leaves (the x86 sweep's k=584):
    # copy 1 locked for an edit, its env truncated to nothing.
    shell.exec0(
        f"grub-editenv {GRUBENV}/mender_grubenv1/lock set editing=1 && "
        f": > {GRUBENV}/mender_grubenv1/env && sync"
    )
    booted.power_cut()
    before = observe.env_host("copy 1 emptied")
    assert before.detail["no_block"] == FILES[0]

    # The oracle judges this boot too: a failed restore, a cleared lock.
    boots = booted.power_on()

    assert [(b.bootloader_slot, b.saves) for b in boots] == [("A", ())]
    tail = ab_live.recorder.tail(300)
    assert "save_env (restore) FAILED on grub-mender-grubenv/mender_grubenv1/env" in tail
    after = observe.env_host("after the failed restore")
    assert (after.detail["lock1"], after.detail["copy"], dict(after.vars)) == ("0", FILES[0], {})
