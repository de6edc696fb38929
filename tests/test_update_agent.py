"""The device's update agent, on the real image: it verifies before it touches
the env, and the harness catches a payload that arrives corrupted."""

import time
from pathlib import Path

import pexpect
import pytest

from harness.errors import DeviceError
from harness.images import Payload

pytestmark = pytest.mark.qemu


def test_install_refuses_a_payload_whose_sha256_does_not_match(
    booted, push, observe, shell, payloads
):
    attached = push.attach(payloads["v2"])

    code, out = shell.exec(f"ab-update install {attached.device_path} {'0' * 64}")

    assert code == 3, out
    assert "sha256 mismatch" in out and "env untouched" in out
    env = observe.env_host("after refused install")
    assert (env.boot_part, env.upgrade_available, env.bootcount) == (2, False, 0)
    assert [b.running_slot for b in booted.reboot()] == ["A"]


def test_a_payload_corrupted_on_the_way_is_caught_on_the_device(
    booted, push, payloads, tmp_path: Path
):
    good = payloads["v2"]
    data = bytearray(good.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupted = tmp_path / "rootfs-v2-corrupted.img"
    corrupted.write_bytes(bytes(data))

    with pytest.raises(DeviceError, match="arrived corrupted"):
        push.attach(Payload("v2-corrupted", corrupted, good.sha256, good.version))


def test_power_cut_after_the_write_but_before_the_env_keeps_slot_a(
    booted, push, observe, ab_live, payloads
):
    payload = payloads["v2"]
    attached = push.attach(payload)
    console = ab_live.target.get_driver("ConsoleProtocol")
    console.sendline(f"ab-update install {attached.device_path} {attached.device_sha256}")
    console.expect("ab-update: writing", timeout=10)
    # The payload is complete in slot B once the host sees its bytes there; the
    # agent is then still verifying, and has not touched the env.
    deadline = time.monotonic() + 20
    while observe.slot_sha256("B") != payload.sha256:
        assert time.monotonic() < deadline, "slot B never received the whole payload"
        time.sleep(0.05)

    # Read what the device printed so far: the evidence must show the cut
    # landed before the agent's verification finished (and so before the env).
    index, *_ = console.expect(["ab-update: verified", pexpect.TIMEOUT], timeout=0.1)
    booted.power_cut()

    assert index == 1, "the agent finished verifying before the cut; the test proves nothing"
    assert "ab-update: writing" in ab_live.recorder.tail(40)
    boots = booted.power_on()
    assert [b.running_slot for b in boots] == ["A"]
    env = observe.env_host("after power cut")
    assert (env.boot_part, env.upgrade_available) == (2, False)
    assert observe.slot_sha256("B") == payload.sha256
