"""A real USB key: the Mender artifact on a FAT `usb-storage` device, hot-plugged
into the machine's xHCI controller through QMP while the device runs, found
by its USB serial, mounted and installed by the real Mender client."""

from __future__ import annotations

import copy
import dataclasses

import pytest

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
