"""Ways to make an update reachable on the device, each one module behind `Delivery`.

- ``hotplug`` (`qemu_hotplug`): the payload file hot-plugged into QEMU as a
  read-only disk, the "USB key"; needs the target's QMP;
- ``network`` (`network`): served from the test host over HTTP
  (`http_server.PayloadServer`), fetched and checked by the device;
- ``ssh`` (`ssh`): copied onto the device with labgrid's SSHDriver, checked there;
- ``usbstorage`` (`usb_storage`): written onto a USB stick or an SD card in a mux
  with labgrid's USBStorageDriver (and USBSDMuxDriver), read by the board.

A target picks one with `ab-harness.delivery` (a name, or a mapping with
`method:` and the delivery's options); QEMU targets default to ``hotplug``.
`KINDS` says what each needs, so the plugin skips a scenario on a target
that cannot offer it, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.delivery.base import Delivered, Delivery, DeliveryRefused
from harness.delivery.http_server import NetworkFault, PayloadServer, Served
from harness.delivery.network import NetworkPull
from harness.delivery.qemu_hotplug import HotplugDelivery
from harness.delivery.ssh import SshCopy
from harness.delivery.usb_storage import MediumWrite
from harness.device.shell import ShellLike
from harness.errors import HarnessConfigError

if TYPE_CHECKING:
    from harness.device.live import LiveTarget

Opener = Callable[["LiveTarget", ShellLike, Mapping[str, object]], AbstractContextManager[Delivery]]


@dataclass(frozen=True)
class DeliveryKind:
    """A delivery as a target YAML names it: what it needs, how it is opened for a test."""

    name: str
    needs: frozenset[str]
    open: Opener


@contextmanager
def _open_hotplug(
    live: LiveTarget, shell: ShellLike, options: Mapping[str, object]
) -> Iterator[Delivery]:
    from harness.machines.qmp import QmpChannel

    if options:
        raise HarnessConfigError(
            f"delivery 'hotplug' takes no options, got {sorted(options)}",
            "set the hot-plug ports with ABQEMUDriver's hotplug_ports / hotplug_bus",
        )
    qemu = live.qemu
    if qemu is None or qemu.qmp_socket is None:
        raise HarnessConfigError(
            f"target '{live.spec.name}' has no QEMU to hot-plug a payload into",
            "use delivery: network on a board",
        )
    with QmpChannel.connect(qemu.qmp_socket) as qmp:
        yield HotplugDelivery(qmp, shell, qemu.payload_ports)


@contextmanager
def _closing(delivery: Delivery) -> Iterator[Delivery]:
    """A delivery for the test's length: its server, connection or medium closed after."""
    try:
        yield delivery
    finally:
        delivery.close()


def _required(live: LiveTarget, cls: type, delivery: str, fix: str) -> Any:
    """The target's labgrid driver of class `cls`, or one line saying it lacks one."""
    from harness.device.live import find_driver

    driver = find_driver(live.target, cls)
    if driver is None:
        raise HarnessConfigError(
            f"target '{live.spec.name}' has delivery '{delivery}' but no {cls.__name__}", fix
        )
    return driver


def _open_network(
    live: LiveTarget, shell: ShellLike, options: Mapping[str, object]
) -> AbstractContextManager[Delivery]:
    return _closing(NetworkPull.from_options(shell, options))


def _open_ssh(
    live: LiveTarget, shell: ShellLike, options: Mapping[str, object]
) -> AbstractContextManager[Delivery]:
    from labgrid.driver import SSHDriver

    driver = _required(
        live, SSHDriver, "ssh",
        "add a NetworkService resource and an SSHDriver (targets/qemu-arm64-uboot-ssh.yaml)",
    )  # fmt: skip
    return _closing(SshCopy.from_options(live.target, driver, shell, options))


def _open_usbstorage(
    live: LiveTarget, shell: ShellLike, options: Mapping[str, object]
) -> AbstractContextManager[Delivery]:
    from labgrid.driver import USBSDMuxDriver, USBStorageDriver

    from harness.device.live import find_driver

    storage = _required(
        live, USBStorageDriver, "usbstorage",
        "add a USBMassStorage (or USBSDMuxDevice) resource and a USBStorageDriver",
    )  # fmt: skip
    mux = find_driver(live.target, USBSDMuxDriver)
    return _closing(MediumWrite.from_options(live.target, storage, mux, shell, options))


KINDS: dict[str, DeliveryKind] = {
    "hotplug": DeliveryKind("hotplug", HotplugDelivery.needs, _open_hotplug),
    "network": DeliveryKind("network", NetworkPull.needs, _open_network),
    "ssh": DeliveryKind("ssh", SshCopy.needs, _open_ssh),
    "usbstorage": DeliveryKind("usbstorage", MediumWrite.needs, _open_usbstorage),
}


def delivery_kind(name: str) -> DeliveryKind:
    if name not in KINDS:
        raise HarnessConfigError(
            f"no delivery named '{name}'", f"use one of: {', '.join(sorted(KINDS))}"
        )
    return KINDS[name]


__all__ = [
    "KINDS",
    "Delivered",
    "Delivery",
    "DeliveryKind",
    "DeliveryRefused",
    "HotplugDelivery",
    "MediumWrite",
    "NetworkFault",
    "NetworkPull",
    "PayloadServer",
    "Served",
    "SshCopy",
    "delivery_kind",
]
