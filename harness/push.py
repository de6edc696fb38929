"""Pushing an update artifact to the device and installing it there.

The QEMU path is the "USB key": the payload file is hot-plugged as a
read-only virtio disk through QMP. The update agent hashes the payload once,
while it writes it into the inactive slot (a hash pass costs about as much
as a boot under TCG), and the harness requires the hash the device computed
to be the one it built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.clients import ShellAgent, UpdateClient
from harness.errors import DeviceError
from harness.hotplug import HotplugPort, find_by_serial_script
from harness.images import Payload
from harness.shell import ShellLike
from harness.steps import NoSteps, StepLog

log = logging.getLogger(__name__)


class QmpLike(Protocol):
    def execute(
        self, command: str, arguments: dict[str, object] | None = None, timeout_s: float = 10.0
    ) -> object: ...


@dataclass(frozen=True)
class AttachedPayload:
    """A payload visible on the device, at the size the harness built."""

    payload: Payload
    device_path: str
    qdev_id: str


@dataclass(frozen=True)
class InstallReport:
    """What the update agent did with an attached payload.

    `device_sha256` is the hash the device computed while writing (None when
    the agent stopped before it had one).
    """

    attached: AttachedPayload
    exit_code: int
    output: str
    seconds: float
    device_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class UsbKeyPusher:
    """Hot-plugs payloads as virtio disks and installs them with the device's agent.

    Every payload gets a hot-plug port of its own and a virtio serial number
    (`ab-key1`, `ab-key2`, ...): the device node is found by that serial in
    sysfs, so a key left plugged from an earlier push (it survives reboots,
    as a USB stick would) can never be mistaken for the new one.
    """

    def __init__(
        self,
        qmp: QmpLike,
        shell: ShellLike,
        ports: Sequence[HotplugPort | str] = ("ab-hp0",),
        appear_timeout_s: float = 10.0,
        steps: StepLog | None = None,
        client: UpdateClient | None = None,
    ) -> None:
        self._qmp = qmp
        self._shell = shell
        self._client: UpdateClient = client or ShellAgent()
        # A bare string is a PCIe root port (a virtio-blk disk goes in it).
        self._ports = [HotplugPort(p) if isinstance(p, str) else p for p in ports]
        self._appear_timeout_s = appear_timeout_s
        self._count = 0
        self._steps: StepLog = steps or NoSteps()

    def attach(self, payload: Payload) -> AttachedPayload:
        """Plug the payload in, find its device node, and check its size on the device."""
        if self._count >= len(self._ports):
            raise DeviceError(
                f"no free hot-plug port for payload '{payload.name}' "
                f"({len(self._ports)} already used in this test)",
                "raise hotplug_ports of ABQEMUDriver in the target YAML",
            )
        port = self._ports[self._count]
        self._count += 1
        node, serial = f"ab-payload{self._count}", f"ab-key{self._count}"
        self._qmp.execute(
            "blockdev-add",
            {
                "driver": "raw",
                "node-name": node,
                "read-only": True,
                "file": {"driver": "file", "filename": str(payload.path), "read-only": True},
            },
        )
        self._qmp.execute("device_add", port.device_add(node, serial))
        dev = self._find_device(serial)
        size = int(self._shell.exec0(f"blockdev --getsize64 {dev}").strip().splitlines()[-1])
        if size != payload.size:
            raise DeviceError(
                f"payload '{payload.name}' is {payload.size} bytes "
                f"but {dev} on the device has {size}",
                "the payload file changed while it was plugged in; rebuild the image cache",
            )
        log.info("payload %s attached as %s (%d bytes)", payload.name, dev, size)
        return AttachedPayload(payload, dev, serial)

    def _find_device(self, serial: str) -> str:
        """Wait for the block device whose serial is `serial`; return /dev/NAME."""
        out = self._shell.exec0(
            find_by_serial_script(serial, int(self._appear_timeout_s * 10)),
            timeout_s=self._appear_timeout_s + 10,
        )
        return out.strip().splitlines()[-1]

    def install(
        self, payload: Payload, timeout_s: float = 180.0, *, expect_sha256: str | None = None
    ) -> InstallReport:
        """Attach the payload and run the device's update client on it.

        The agent is told to expect `expect_sha256` (default: the payload's
        own hash). A successful install whose device-side hash is not the
        payload's is a DeviceError: the agent accepted bytes it should not have.
        """
        want = expect_sha256 or payload.sha256
        with self._steps.step(f"install {payload.name}"):
            # What goes on the key is the client's business: the raw image for
            # the shell agent, a FAT key with a .mender artifact for Mender.
            attached = self.attach(self._client.medium(payload))
            started = time.monotonic()
            result = self._client.install(self._shell, attached.device_path, want, timeout_s)
        digest = self._client.device_sha256(result)
        seconds = time.monotonic() - started
        report = InstallReport(attached, result.exit_code, result.output, seconds, digest)
        log.info("install %s: exit %d in %.1f s", payload.name, report.exit_code, report.seconds)
        if report.ok and self._client.reports_sha256 and digest != payload.sha256:
            raise DeviceError(
                f"the agent installed '{payload.name}' but the device hashed "
                f"{(digest or 'nothing')[:16]}…, not {payload.sha256[:16]}…",
                "the update agent must refuse a payload whose hash does not match",
            )
        return report
