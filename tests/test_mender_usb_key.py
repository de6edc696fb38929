"""A real USB key: the Mender artifact on a FAT `usb-storage` device, hot-plugged
into the machine's xHCI controller through QMP while the device runs. First
installed by the harness over the shell; then noticed by the device itself
(the Mender flavour's USB watcher, opt-in), which installs a good key and
refuses a foreign one without touching the env."""

from __future__ import annotations

import copy
import dataclasses
import time

import pytest

from harness.artifacts.builder import ArtifactSpec
from harness.clients.mender import artifact_for, key_for

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.nightly,
    pytest.mark.ab_client("mender"),
    pytest.mark.ab_target("qemu-arm64-uboot"),
]


@pytest.fixture
def ab_target_spec(ab_target_spec):
    """The reference target with its payloads plugged in over USB (hotplug_bus: usb)."""
    labgrid = copy.deepcopy(dict(ab_target_spec.labgrid))
    labgrid["targets"]["main"]["drivers"]["ABQEMUDriver"]["hotplug_bus"] = "usb"
    return dataclasses.replace(ab_target_spec, labgrid=labgrid)


def test_an_update_on_a_usb_key_installs_and_commits(booted, push, shell, observe, payloads):
    install = push.install(payloads["v2"])

    assert install.ok, install.output
    assert install.attached.device_path.startswith("/dev/sd"), install.attached
    driver = shell.exec0(f"readlink -f /sys/block/{install.attached.device_path[5:]}/device")
    assert "/usb" in driver, driver
    assert observe.slot_sha256("B", payloads["v2"].size) == payloads["v2"].sha256
    boots = booted.reboot()
    assert [(b.running_slot, b.version, b.health) for b in boots] == [("B", "2", "pass")]
    assert observe.env_host("committed").upgrade_available is False


def _usb_log_until(shell, line: str, deadline_s: float = 150.0) -> list[str]:
    """The device's USB watcher log, once it holds `line` (bounded wait)."""
    end = time.monotonic() + deadline_s
    while True:
        said = shell.exec0("cat /run/ab-usb.log 2>/dev/null || true").splitlines()
        if any(line in entry for entry in said) or time.monotonic() > end:
            return [entry.strip() for entry in said]
        time.sleep(1.0)


def test_the_device_installs_a_usb_key_by_itself_and_a_foreign_key_changes_nothing(
    booted, push, shell, observe, payloads
):
    payload = payloads["v2"]
    shell.exec0("touch /data/ab-usb-autoinstall && sync")  # the image's watcher is opt-in
    env_before = observe.env_host("before")
    foreign = artifact_for(
        payload, ArtifactSpec("ab-harness-v2-foreign", ("some-other-board",)), tag="-foreign"
    )

    push.attach(key_for(foreign, "a foreign key"))
    said = _usb_log_until(shell, ": refused (exit ")
    assert ": refused (exit " in said[-1], said
    assert observe.env_host("after the foreign key").vars == env_before.vars

    push.attach(key_for(artifact_for(payload), "the v2 key"))
    said = _usb_log_until(shell, ": installed")
    assert said[-1].endswith(": installed"), said
    env = observe.env_host("installed from the key")
    assert (env.boot_part, env.upgrade_available) == (3, True)
    boots = booted.reboot()
    assert [(b.running_slot, b.version, b.health) for b in boots] == [("B", "2", "pass")]
