"""Delivery by QEMU hot-plug: the payload file becomes a read-only disk, the "USB key".

Every payload gets a hot-plug port of its own and a serial number (`ab-key1`,
`ab-key2`, ...): the device node is found by that serial in sysfs, so a key
left plugged from an earlier push (it survives reboots, as a USB stick
would) can never be mistaken for the new one. Needs the target's QMP
(capability "hotplug": an ABQEMUDriver).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from harness.delivery.base import Delivered
from harness.device.shell import ShellLike
from harness.errors import DeviceError
from harness.images import Payload
from harness.machines.hotplug import HotplugPort, find_by_serial_script

log = logging.getLogger(__name__)

NAME = "hotplug"


class QmpLike(Protocol):
    def execute(
        self, command: str, arguments: dict[str, object] | None = None, timeout_s: float = 10.0
    ) -> object: ...


class HotplugDelivery:
    """Plugs each payload into the next free hot-plug port and finds it on the device."""

    name = NAME
    needs = frozenset({"hotplug"})

    def __init__(
        self,
        qmp: QmpLike,
        shell: ShellLike,
        ports: Sequence[HotplugPort | str] = ("ab-hp0",),
        appear_timeout_s: float = 10.0,
    ) -> None:
        self._qmp = qmp
        self._shell = shell
        # A bare string is a PCIe root port (a virtio-blk disk goes in it).
        self._ports = [HotplugPort(p) if isinstance(p, str) else p for p in ports]
        self._appear_timeout_s = appear_timeout_s
        self._count = 0

    def deliver(self, payload: Payload) -> Delivered:
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
        return Delivered(payload, dev, f"hot-plugged as {serial}", {"qdev_id": serial})

    def _find_device(self, serial: str) -> str:
        """Wait for the block device whose serial is `serial`; return /dev/NAME."""
        out = self._shell.exec0(
            find_by_serial_script(serial, int(self._appear_timeout_s * 10)),
            timeout_s=self._appear_timeout_s + 10,
        )
        return out.strip().splitlines()[-1]

    def close(self) -> None:
        return None  # the keys stay plugged until the machine stops, as USB sticks would
