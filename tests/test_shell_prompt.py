"""A wrong shell prompt in the target YAML ends in the harness's own message
(the YAML keys to check and the serial tail), not labgrid's raw pexpect TIMEOUT."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from harness.bootloaders import bootloader_for
from harness.device.live import live_target
from harness.errors import DeviceError
from harness.images import ensure_image
from harness.targets.target import default_targets_dir, load_target

REFERENCE = default_targets_dir() / "qemu-arm64-uboot.yaml"
LOGIN_TIMEOUT_S = 8


@pytest.mark.qemu
@pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None, reason="no qemu-system-aarch64")
def test_wrong_prompt_names_the_yaml_key_and_shows_the_serial_tail(tmp_path: Path) -> None:
    text = REFERENCE.read_text()
    for old, new in (
        ("prompt: 'ab-shell# '", "prompt: 'xyz# '"),
        ("login_timeout: 30", f"login_timeout: {LOGIN_TIMEOUT_S}"),
    ):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "wrong-prompt.yaml"
    path.write_text(text)
    spec = load_target(str(path))
    image = ensure_image("arm64-uboot")

    started = time.monotonic()
    with live_target(spec, image, tmp_path / "work", bootloader_for("uboot", spec.env)) as live:
        with pytest.raises(DeviceError) as info:
            live.strategy.transition("shell")
        elapsed = time.monotonic() - started
        assert live.qemu is not None
        qemu = live.qemu._child  # the QEMU process, to prove it is ended below
        assert qemu is not None and qemu.poll() is None

    message = str(info.value)
    first, _, tail = message.partition("\n")
    assert first == (
        f"no shell prompt 'xyz# ' (or login prompt ' login: ') within {LOGIN_TIMEOUT_S} s "
        "(targets.main.drivers.ShellDriver.prompt / .login_prompt / .login_timeout)"
    )
    # The device did boot (the fault is the YAML, not the device): the tail shows
    # the ready marker and the real prompt the YAML should have named.
    assert "last serial lines:" in tail
    assert "ab-init: ready slot=A" in tail
    assert "ab-shell#" in tail
    assert message.endswith(
        "— fix: compare targets.main.drivers.ShellDriver.prompt and .login_prompt "
        "in the target YAML with the serial log"
    )
    assert "Traceback" not in message and "pexpect" not in message
    assert elapsed < 40
    assert qemu.poll() is not None  # leaving live_target ended QEMU
