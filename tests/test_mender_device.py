"""The real Mender client on the arm64 U-Boot image: where its behaviour meets
the harness's A/B contract, and where it does not (see docs/findings.md).

Each test drives Debian's mender-client 3.4 in standalone mode through the
adapter, on the image's Mender flavour, and judges what it left in the env
(read on the host) and in the slots (hashed on the host)."""

from __future__ import annotations

import pytest

from harness.artifacts.builder import ArtifactSpec
from harness.clients.mender import artifact_for, key_for, log_lines, mender_target

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.nightly,
    pytest.mark.ab_client("mender"),
    pytest.mark.ab_target("qemu-arm64-uboot"),
]


def test_install_writes_b_and_points_the_env_at_it_then_rollback_undoes_it(
    booted, push, observe, shell, update_client, payloads
):
    assert update_client.show_artifact(shell) == "ab-harness-v1"
    env_before = observe.env_host("before")

    install = push.install(payloads["v2"])
    assert install.ok, install.output
    assert observe.slot_sha256("B", payloads["v2"].size) == payloads["v2"].sha256
    env = observe.env_host("installed")
    assert (env.boot_part, env.get("mender_boot_part_hex"), env.upgrade_available) == (3, "3", True)
    assert env.bootcount == 0
    # Every Mender env write starts with a probe write ("key value", which
    # libubootenv ignores) before the real one: two saves, the flags + 2.
    assert int(env.detail["flags"]) == (int(env_before.detail["flags"]) + 2) % 256
    messages = [line.message for line in log_lines(install.output)]
    assert "Mender running on partition: /dev/vda2" in messages

    rollback = update_client.rollback(shell)
    assert rollback.ok, rollback.output
    env = observe.env_host("rolled back")
    assert (env.boot_part, env.upgrade_available) == (2, False)
    rolled = [line.message for line in update_client.log_lines(rollback)]
    assert any("Rolling back to the active partition" in m for m in rolled), rollback.output
    assert [b.running_slot for b in booted.reboot()] == ["A"]


def test_commit_before_the_reboot_commits_an_update_that_never_ran(
    booted, push, observe, shell, update_client, payloads
):
    """The shell agent refuses a commit on a slot it did not boot into (exit
    6); Mender 3.4's standalone commit checks only upgrade_available=1, so a
    commit right after the install makes B permanent before it ever ran."""
    assert push.install(payloads["v2"]).ok
    commit = update_client.commit(shell)

    assert commit.ok, commit.output
    env = observe.env_host("committed untried")
    assert (env.boot_part, env.upgrade_available) == (3, False)
    boots = booted.reboot()
    # B boots as a committed slot: no trial, nothing counted, nothing to fall back on.
    assert [(b.bootloader_slot, b.running_slot, b.upgrade_available) for b in boots] == [
        ("B", "B", False)
    ]
    assert update_client.show_artifact(shell) == "ab-harness-v2"


@pytest.mark.parametrize("damage", ["foreign-device-type", "tampered-payload"])
def test_a_key_with_a_bad_artifact_changes_nothing_that_boots(
    booted, push, observe, shell, update_client, payloads, tmp_path, damage
):
    payload = payloads["v2"]
    env_before = observe.env_host("before")
    slot_a = observe.slot_sha256("A")
    if damage == "foreign-device-type":
        spec = ArtifactSpec(name="ab-harness-v2-foreign", device_types=("some-other-board",))
        artifact = artifact_for(payload, spec, tag="-foreign")
        slot_b = observe.slot_sha256("B")
    else:
        good = artifact_for(payload)
        data = bytearray(good.read_bytes())
        middle = len(data) // 2  # inside the compressed rootfs
        data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
        artifact = tmp_path / "tampered.mender"
        artifact.write_bytes(bytes(data))
        slot_b = None
    assert mender_target(payload).device_type == "arm64-uboot-mender"

    attached = push.attach(key_for(artifact, damage))
    result = update_client.install(shell, attached.device_path, payload.sha256, 180.0)

    assert not result.ok, result.output
    errors = [line.message for line in update_client.log_lines(result) if line.level == "error"]
    assert errors, result.output
    env = observe.env_host("after the refused install")
    assert env.vars == env_before.vars
    assert observe.slot_sha256("A") == slot_a
    if slot_b is not None:  # refused on its header: B was never opened
        assert observe.slot_sha256("B") == slot_b
    assert [b.running_slot for b in booted.reboot()] == ["A"]
