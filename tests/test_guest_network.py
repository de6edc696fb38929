"""Guest networking of the reference image: opt-in per target (labgrid's `nic:`).

With a virtio NIC on QEMU's user network the slot's init brings up
10.0.2.15/24 via 10.0.2.2, and the guest reaches a server the harness binds
on the host's loopback at 10.0.2.2 (QEMU's user network answers for it).
Without a NIC (the reference target) no network module is loaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.bootloaders import bootloader_for
from harness.delivery import PayloadServer
from harness.device.live import live_target
from harness.device.shell import Shell
from harness.images import ensure_image
from harness.targets.target import load_target

# make test covers the same path through tests/test_network_delivery.py; this one
# checks the address and route themselves, nightly.
pytestmark = [
    pytest.mark.qemu,
    pytest.mark.nightly,
    pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None, reason="no qemu"),
]


def test_the_guest_fetches_from_the_hosts_loopback_through_user_networking(
    tmp_path: Path,
) -> None:
    spec = load_target("qemu-arm64-uboot-net")
    image = ensure_image("arm64-uboot")
    payload = image.payloads["v2"]
    with (
        PayloadServer({"v2": payload.path}) as server,
        live_target(spec, image, tmp_path / "work", bootloader_for("uboot", spec.env)) as live,
    ):
        live.strategy.transition("shell")
        shell = Shell(live.target.get_driver("ShellDriver", activate=False))
        console = live.recorder.raw(0, live.recorder.size).decode(errors="replace")
        assert "ab-init: network eth0 10.0.2.15/24 via 10.0.2.2" in console
        routes = shell.exec0("ip -4 addr show eth0; ip route")
        assert "inet 10.0.2.15/24" in routes and "default via 10.0.2.2" in routes
        url = server.url("v2", host="10.0.2.2")
        out = shell.exec0(f"wget -q -O - {url} | sha256sum", timeout_s=120)
        assert out.split()[0] == payload.sha256
        served = server.wait_served(1)
        assert [(s.status, s.bytes_sent) for s in served] == [(200, payload.size)]
