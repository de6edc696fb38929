"""Pushing an update artifact to the device and installing it there.

The QEMU path is the "USB key": the payload file is hot-plugged as a
read-only virtio disk through QMP, and the device must see exactly the
bytes the harness built (sha256 checked on the device) before the update
agent writes it into the inactive slot.
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass
from typing import Protocol

from harness.errors import DeviceError
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
    """A payload visible on the device, with the checksum the device computed."""

    payload: Payload
    device_path: str
    qdev_id: str
    device_sha256: str


@dataclass(frozen=True)
class InstallReport:
    """What the update agent did with an attached payload."""

    attached: AttachedPayload
    exit_code: int
    output: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class UsbKeyPusher:
    """Hot-plugs payloads as virtio disks and installs them with the device's agent."""

    def __init__(
        self,
        qmp: QmpLike,
        shell: ShellLike,
        device_path: str = "/dev/vdb",
        port: str = "ab-hp0",
        appear_timeout_s: float = 10.0,
        steps: StepLog | None = None,
    ) -> None:
        self._qmp = qmp
        self._shell = shell
        self._device_path = device_path
        self._port = port
        self._appear_timeout_s = appear_timeout_s
        self._count = 0
        self._steps: StepLog = steps or NoSteps()

    def attach(self, payload: Payload) -> AttachedPayload:
        """Plug the payload in, wait for the device node, and verify its sha256 on the device."""
        self._count += 1
        node, qdev = f"ab-payload{self._count}", f"ab-key{self._count}"
        self._qmp.execute(
            "blockdev-add",
            {
                "driver": "raw",
                "node-name": node,
                "read-only": True,
                "file": {"driver": "file", "filename": str(payload.path), "read-only": True},
            },
        )
        self._qmp.execute(
            "device_add", {"driver": "virtio-blk-pci", "drive": node, "id": qdev, "bus": self._port}
        )
        dev = shlex.quote(self._device_path)
        tries = int(self._appear_timeout_s * 10)
        self._shell.exec0(
            f"i=0; while [ ! -b {dev} ] && [ $i -lt {tries} ]; do usleep 100000; i=$((i+1)); done;"
            f" [ -b {dev} ] || {{ echo '{self._device_path} did not appear'; exit 1; }}",
            timeout_s=self._appear_timeout_s + 10,
        )
        size = int(self._shell.exec0(f"blockdev --getsize64 {dev}").strip().splitlines()[-1])
        if size != payload.size:
            raise DeviceError(
                f"payload '{payload.name}' is {payload.size} bytes but "
                f"{self._device_path} on the device has {size}",
                "another disk took the device name; check payload_device in the target YAML",
            )
        out = self._shell.exec0(f"head -c {size} {dev} | sha256sum", timeout_s=120)
        digest = out.split()[0] if out.split() else ""
        if digest != payload.sha256:
            raise DeviceError(
                f"payload '{payload.name}' arrived corrupted: sha256 on the device "
                f"{digest[:16]}… != {payload.sha256[:16]}…",
                "rebuild the image cache ('ab-harness images build') and retry",
            )
        log.info(
            "payload %s attached as %s, sha256 verified on the device",
            payload.name,
            self._device_path,
        )
        return AttachedPayload(payload, self._device_path, qdev, digest)

    def detach(self, attached: AttachedPayload) -> None:
        """Unplug a payload disk (the guest may take a moment to release it)."""
        self._qmp.execute("device_del", {"id": attached.qdev_id})

    def install(self, payload: Payload, timeout_s: float = 180.0) -> InstallReport:
        """Attach the payload and run the device's update agent on it."""
        with self._steps.step(f"install {payload.name}"):
            attached = self.attach(payload)
            started = time.monotonic()
            code, out = self._shell.exec(
                f"ab-update install {shlex.quote(attached.device_path)} {attached.device_sha256}",
                timeout_s=timeout_s,
            )
        report = InstallReport(attached, code, out, time.monotonic() - started)
        log.info("ab-update install %s: exit %d in %.1f s", payload.name, code, report.seconds)
        return report
