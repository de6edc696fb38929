"""SWUpdate on its device, beyond the scenarios: what its own state marker
does and does not do for a rollback.

SWUpdate sets `ustate=1` (INSTALLED) after every successful install, and its
documentation says the bootloader should count boots of a copy under test.
U-Boot's counter, though, runs only while `upgrade_available` is set, and
SWUpdate never sets that: only the .swu's `bootenv` can. A .swu whose bootenv
switches the copy and nothing else (the documentation's own dual-copy
example sets `bootpart` alone) installs "successfully", and a release that
cannot boot is then started again and again, never counted, never rolled back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.artifacts.swu_writer import Copy, dual_copy_description
from harness.clients import package_cache
from harness.clients.swupdate import SWU_FILE, swu_for, swupdate_target
from harness.delivery.http_server import PayloadServer

pytestmark = [pytest.mark.qemu, pytest.mark.ab_target("qemu-arm64-uboot-swupdate")]
HOST = "10.0.2.2"  # the host's loopback, as a QEMU user-network guest sees it


def bootpart_only(payload) -> str:
    """The payload's sw-description with the documentation's bootenv: the copy, nothing else."""
    target = swupdate_target(payload)
    copies = [
        Copy(
            Path(target.slot_devices[running]).name,
            target.slot_devices[standby],
            {"bootpart": target.bootpart[standby]},
        )
        for running, standby in (("A", "B"), ("B", "A"))
    ]
    release = target.release_names[payload.name]
    return dual_copy_description(
        payload.version, release, "rootfs.ext4.zst", "{sha256}", copies, (target.hardware[1],)
    )


def test_ustate_installed_alone_never_rolls_a_broken_update_back(
    booted, push, observe, shell, update_client, payloads, bootloader, slots
):
    payload = payloads["v2-panic-init"]
    swu = swu_for(payload, description=bootpart_only(payload), tag="-bootpart-only")
    attached = push.attach(package_cache.key_for(swu, SWU_FILE, "v2-panic-init, bootpart only"))

    result = update_client.install(shell, attached.device_path, payload.sha256, 180.0)

    assert result.ok, result.output
    env = observe.env_device("installed")
    # SWUpdate's own marker says "under test"; U-Boot's counter is off.
    assert (env.boot_part, env.get("ustate"), env.upgrade_available) == (slots["B"], "1", False)
    assert bootloader.settled(env, slots) == (
        "ustate=1: the update is under test, but upgrade_available=0: "
        "U-Boot counts none of its boots and never falls back"
    )

    boots = booted.reboot_and_watch(3)

    # B's init dies, the kernel panics and resets the board, U-Boot starts B again.
    assert [b.bootloader_slot for b in boots] == ["B", "B", "B"]
    assert not any(b.reached_shell for b in boots)
    assert all("kernel panic" in (b.failure or "") for b in boots), [b.failure for b in boots]
    after = observe.env_host("after three boots")
    assert (after.boot_part, after.get("ustate"), after.bootcount) == (slots["B"], "1", 0)
    assert after.pending  # and it stays so: nothing will ever end this test


def test_a_swu_whose_image_was_changed_is_refused_before_the_standby_copy_is_touched(
    booted, push, observe, shell, update_client, payloads, tmp_path
):
    """SWUpdate (2022.12, images not `installed-directly`) copies each image to
    its TMPDIR while it hashes it, and writes the slot only once the hash
    matched: a changed image byte leaves copy B and the env as they were
    (Mender, by contrast, streams the payload into the slot before it finds
    the mismatch: docs/findings.md)."""
    payload = payloads["v2"]
    good = swu_for(payload)
    bad = tmp_path / "changed-image.swu"
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0x55  # inside the compressed rootfs, after the signed description
    bad.write_bytes(bytes(data))
    slot_b, env_before = observe.slot_sha256("B"), observe.env_host("before").as_dict()

    attached = push.attach(package_cache.key_for(bad, SWU_FILE, "v2 with a changed image byte"))
    result = update_client.install(shell, attached.device_path, payload.sha256, 180.0)

    assert not result.ok, result.output
    assert "HASH mismatch" in result.output or "Checksum WRONG" in result.output, result.output
    assert observe.slot_sha256("B") == slot_b
    assert observe.env_host("after").as_dict() == env_before


@pytest.mark.ab_target("qemu-arm64-uboot-swupdate-net")
def test_swupdate_pulls_the_swu_over_http_with_its_own_downloader(
    booted, shell, observe, update_client, payloads
):
    """`swupdate -d "-u URL"`: SWUpdate's downloader (libcurl) streams the .swu
    from the harness's PayloadServer over QEMU's user network; the install and
    the boot into B are those of a key."""
    payload = payloads["v2"]
    swu = swu_for(payload)

    with PayloadServer({SWU_FILE: swu}) as server:
        result = update_client.install_url(shell, server.url(SWU_FILE, HOST))

    assert result.ok, result.output
    said = [line.message for line in update_client.log_lines(result)]
    assert "Verified OK" in said, said
    assert observe.env_host("installed").pending
    boots = booted.reboot()
    assert [(b.running_slot, b.version, b.health) for b in boots] == [("B", "2", "pass")]
