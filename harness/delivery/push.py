"""Pushing an update to the device: a delivery makes it readable there, the
update client installs it.

How the bytes reach the device is a `harness.delivery` module (QEMU hot-plug,
network pull), chosen per target (`ab-harness.delivery`); the client is
handed the device path the delivery made. The update agent hashes the payload
once, while it writes it into the inactive slot (a hash pass costs about as
much as a boot under TCG), and the harness requires the hash the device
computed to be the one it built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from harness.clients import ShellAgent, UpdateClient
from harness.delivery.base import Delivered, Delivery, DeliveryRefused
from harness.delivery.qemu_hotplug import HotplugDelivery, QmpLike
from harness.device.shell import ShellLike
from harness.device.steps import NoSteps, StepLog
from harness.errors import DeviceError
from harness.images import Payload
from harness.machines.hotplug import HotplugPort

log = logging.getLogger(__name__)

# A payload visible on the device (the name scenarios and tests know it by).
AttachedPayload = Delivered
__all__ = ["AttachedPayload", "InstallReport", "Pusher", "QmpLike", "UsbKeyPusher"]


@dataclass(frozen=True)
class InstallReport:
    """What the update agent did with a delivered payload.

    `device_sha256` is the hash the device computed while writing (None when
    the agent stopped before it had one). A payload the device refused on
    delivery (a fetch whose bytes were wrong) never reached the client: its
    report has exit code `REFUSED_ON_DELIVERY` and the refusal as output.
    """

    attached: Delivered | None
    exit_code: int
    output: str
    seconds: float
    device_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


REFUSED_ON_DELIVERY = -1


class Pusher:
    """Delivers payloads (one delivery per test) and installs them with the device's client."""

    def __init__(
        self,
        delivery: Delivery,
        shell: ShellLike,
        steps: StepLog | None = None,
        client: UpdateClient | None = None,
    ) -> None:
        self.delivery = delivery
        self._shell = shell
        self._client: UpdateClient = client or ShellAgent()
        self._steps: StepLog = steps or NoSteps()

    def attach(self, payload: Payload) -> Delivered:
        """Make the payload readable on the device without installing it."""
        delivered = self.delivery.deliver(payload)
        event = getattr(self._steps, "event", None)
        if event is not None:
            event(f"payload {payload.name} {delivered.via} at {delivered.device_path}")
        return delivered

    def install(
        self, payload: Payload, timeout_s: float = 180.0, *, expect_sha256: str | None = None
    ) -> InstallReport:
        """Deliver the payload and run the device's update client on it.

        The agent is told to expect `expect_sha256` (default: the payload's
        own hash). A successful install whose device-side hash is not the
        payload's is a DeviceError: the agent accepted bytes it should not have.
        """
        want = expect_sha256 or payload.sha256
        started = time.monotonic()
        with self._steps.step(f"install {payload.name}"):
            try:
                # What goes on the key is the client's business: the raw image
                # for the shell agent, a FAT key with a .mender artifact for Mender.
                attached = self.attach(self._client.medium(payload))
            except DeliveryRefused as err:
                log.info("payload %s refused on delivery: %s", payload.name, err.cause)
                return InstallReport(
                    None, REFUSED_ON_DELIVERY, str(err), time.monotonic() - started
                )
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


class UsbKeyPusher(Pusher):
    """A Pusher over QEMU hot-plug (the "USB key"): for code that holds a QMP channel."""

    def __init__(
        self,
        qmp: QmpLike,
        shell: ShellLike,
        ports: Sequence[HotplugPort | str] = ("ab-hp0",),
        appear_timeout_s: float = 10.0,
        steps: StepLog | None = None,
        client: UpdateClient | None = None,
    ) -> None:
        super().__init__(HotplugDelivery(qmp, shell, ports, appear_timeout_s), shell, steps, client)
