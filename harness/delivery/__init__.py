"""Ways to make an update reachable on the device: QEMU hot-plug (harness.push), HTTP pull."""

from harness.delivery.http_server import NetworkFault, PayloadServer, Served

__all__ = ["NetworkFault", "PayloadServer", "Served"]
