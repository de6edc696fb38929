"""What a delivery is: a way to make an update payload readable on the device.

A delivery is one module behind this interface: QEMU's hot-plug (the "USB
key", `qemu_hotplug`) or a network pull (`network`: the device fetches from a
server on the test host). The update client is then handed the device path
the delivery made; it never knows how the bytes arrived. A delivery says
what it needs from the target (`needs`: "hotplug", "network"), so a target
that cannot offer it skips the scenario with the reason instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from harness.errors import DeviceError
from harness.images import Payload


@dataclass(frozen=True)
class Delivered:
    """A payload readable on the device at `device_path`, at the size the harness built.

    `via` says how it got there ("hot-plugged as ab-key1", "fetched from
    http://10.0.2.2:PORT/v2"), for the evidence.
    """

    payload: Payload
    device_path: str
    via: str
    detail: Mapping[str, object] = field(default_factory=dict)


class DeliveryRefused(DeviceError):
    """The device refused a delivered payload (wrong size or sha256 after a
    fetch): nothing was handed to the update client."""


class Delivery(Protocol):
    """One way payloads reach the device; open for one test, then closed."""

    @property
    def name(self) -> str:
        """Its name in the target YAML (`ab-harness.delivery`)."""
        ...

    @property
    def needs(self) -> frozenset[str]:
        """The target capabilities it cannot work without (see harness.targets.matrix)."""
        ...

    def deliver(self, payload: Payload) -> Delivered:
        """Make `payload` readable on the device; raise DeliveryRefused when the
        device's own check of it fails."""
        ...

    def close(self) -> None:
        """Release what the delivery holds on the host (servers, sockets)."""
        ...
