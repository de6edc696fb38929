"""The device's update agent, on the real image: it keeps the rules Mender's
client keeps — verify before the env changes, never overwrite the fallback
while an update is pending, never commit a slot it did not try."""

import time
from pathlib import Path

import pexpect
import pytest

from harness.images import Payload

pytestmark = pytest.mark.qemu


def test_install_refuses_a_payload_whose_sha256_does_not_match(booted, push, observe, payloads):
    report = push.install(payloads["v2"], expect_sha256="0" * 64)

    assert report.exit_code == 3, report.output
    assert "sha256 mismatch" in report.output and "env untouched" in report.output
    # The device hashed what it wrote: the payload's real hash, not the one it was told.
    assert report.device_sha256 == payloads["v2"].sha256
    env = observe.env_host("after refused install")
    assert (env.boot_part, env.upgrade_available) == (2, False)
    assert [b.running_slot for b in booted.reboot()] == ["A"]


def test_a_payload_corrupted_on_the_way_is_caught_on_the_device(
    booted, push, observe, payloads, tmp_path: Path
):
    good = payloads["v2"]
    data = bytearray(good.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupted = tmp_path / "rootfs-v2-corrupted.img"
    corrupted.write_bytes(bytes(data))

    report = push.install(Payload("v2-corrupted", corrupted, good.sha256, good.version))

    assert report.exit_code == 3 and "sha256 mismatch" in report.output, report.output
    assert observe.env_host("after corrupted install").upgrade_available is False


def test_no_install_while_an_update_is_pending(booted, push, observe, payloads):
    assert push.install(payloads["v2"]).ok
    slot_b = observe.slot_sha256("B", payloads["v2"].size)

    second = push.install(payloads["v2-bad"])

    assert second.exit_code == 5, second.output
    assert "an update is pending" in second.output
    # Nothing was written: the slot the pending update tries is intact.
    assert observe.slot_sha256("B", payloads["v2"].size) == slot_b == payloads["v2"].sha256


@pytest.mark.ab_no_oracle
def test_commit_refuses_a_slot_the_update_did_not_go_to(booted, push, observe, shell, payloads):
    # The bootloader says B is being tried, but Linux still runs A: the state a
    # bootloader that ignores mender_boot_part would leave. The agent must say
    # so and leave the env alone, not commit A as if it were the update.
    assert push.install(payloads["v2"]).ok
    before = observe.env_host("pending, still on A")

    code, out = shell.exec("ab-update commit")

    assert code == 6, out
    assert "not committing: running slot A, env tried slot B" in out
    assert observe.env_host("after refused commit").as_dict() == before.as_dict()


def test_power_cut_after_the_write_but_before_the_env_keeps_slot_a(
    booted, push, observe, ab_live, shell, payloads
):
    payload = payloads["v2"]
    attached = push.attach(payload)
    console = ab_live.target.get_driver("ConsoleProtocol")
    console.sendline(f"ab-update install {attached.device_path} {payload.sha256}")
    console.expect("ab-update: writing", timeout=10)
    # The payload is complete in slot B once the host sees its bytes there; the
    # agent is then still hashing it, and has not touched the env.
    deadline = time.monotonic() + 30
    while observe.slot_sha256("B", payload.size) != payload.sha256:
        assert time.monotonic() < deadline, "slot B never received the whole payload"
        time.sleep(0.05)

    # The evidence must show the cut landed before the agent's hash (and so
    # before the env): its "sha256" line has not been printed yet.
    index, *_ = console.expect(["ab-update: sha256", pexpect.TIMEOUT], timeout=0.1)
    booted.power_cut()

    assert index == 1, "the agent finished hashing before the cut; the test proves nothing"
    boots = booted.power_on()
    assert [b.running_slot for b in boots] == ["A"]
    env = observe.env_host("after power cut")
    assert (env.boot_part, env.upgrade_available) == (2, False)
    assert observe.slot_sha256("B", payload.size) == payload.sha256
