"""Where a payload disk is hot-plugged into a QEMU machine, and as what device.

A payload reaches the device like a USB key: plugged in while it runs. Two
buses can take it, chosen per target (ABQEMUDriver `hotplug_bus`):

- ``pcie``: a `virtio-blk-pci` disk in a PCIe root port of its own. Needs
  PCIe native hot-plug (pciehp) in the guest kernel: QEMU keeps an empty
  slot powered off, and only the guest's hot-plug driver powers it on.
- ``scsi``: a `scsi-hd` disk on a cold-plugged `virtio-scsi-pci` controller,
  for kernels without PCI hot-plug (Debian's armhf kernels): the controller
  announces the new disk itself, so only virtio_scsi and sd_mod are needed.
- ``usb``: a real USB key, a `usb-storage` device on a cold-plugged xHCI
  controller (`qemu-xhci`): the guest needs xHCI, usb-storage and sd_mod
  (the source-built arm64 kernel has them built in; Debian's cloud kernels
  have no USB at all).

Either way the disk carries a serial (`ab-keyN`) the device finds it by:
virtio-blk shows it in ``/sys/block/X/serial``, a USB key in the `serial` of
the USB device above the disk in sysfs, SCSI in the unit serial VPD page
(``/sys/block/X/device/vpd_pg80``, after a 4-byte header).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

HotplugBus = Literal["pcie", "scsi", "usb"]
HOTPLUG_BUSES: tuple[str, ...] = get_args(HotplugBus)
SCSI_CONTROLLER = "ab-scsi"
USB_CONTROLLER = "ab-xhci"


@dataclass(frozen=True)
class HotplugPort:
    """One place a payload disk can be plugged into: its bus and device model."""

    bus: str
    driver: str = "virtio-blk-pci"
    address: Mapping[str, int] = field(default_factory=dict)

    def device_add(self, node: str, serial: str) -> dict[str, object]:
        """QMP `device_add` arguments for the block node `node` with `serial`."""
        return {
            "driver": self.driver,
            "drive": node,
            "id": serial,
            "serial": serial,
            "bus": self.bus,
            **self.address,
        }


def root_port_ids(count: int) -> list[str]:
    """QEMU ids of the PCIe root ports of the ``pcie`` bus."""
    return [f"ab-hp{n}" for n in range(count)]


def ports(bus: HotplugBus, count: int) -> list[HotplugPort]:
    """The `count` places a test can plug payloads into, in order."""
    if bus == "scsi":
        return [
            HotplugPort(f"{SCSI_CONTROLLER}.0", "scsi-hd", {"scsi-id": n, "lun": 0})
            for n in range(count)
        ]
    if bus == "usb":
        return [HotplugPort(f"{USB_CONTROLLER}.0", "usb-storage") for _ in range(count)]
    return [HotplugPort(port) for port in root_port_ids(count)]


def qemu_args(bus: HotplugBus, count: int) -> list[str]:
    """The devices present from power-on that the hot-plugged disks attach to."""
    if bus == "scsi":
        return ["-device", f"virtio-scsi-pci,id={SCSI_CONTROLLER},bus=pcie.0"] if count else []
    if bus == "usb":
        # 8 ports of each kind: one per payload plugged in a test.
        spec = f"qemu-xhci,id={USB_CONTROLLER},bus=pcie.0,p2=8,p3=8"
        return ["-device", spec] if count else []
    args: list[str] = []
    for chassis, port in enumerate(root_port_ids(count), start=1):
        args += ["-device", f"pcie-root-port,id={port},chassis={chassis},bus=pcie.0"]
    return args


def find_by_serial_script(serial: str, tries: int) -> str:
    """A busybox sh loop that prints /dev/NAME of the disk with `serial`, polling
    every 0.1 s `tries` times; it prints a reason and fails if none appears."""
    # A USB key's serial is the USB device's, some levels above the disk.
    usb = (
        'p=$(readlink -f $d/device 2>/dev/null); while [ -n "$p" ] && [ "$p" != / ];'
        " do [ -f $p/idVendor ] && cat $p/serial && break; p=${p%/*}; done"
    )
    read = (
        "v=$(cat $d/serial 2>/dev/null || { [ -e $d/device ] && "
        f"{{ {usb}; }} | grep . ; }} 2>/dev/null || tail -c +5 $d/device/vpd_pg80 2>/dev/null)"
    )
    found = "{ echo /dev/${d##*/}; exit 0; }"
    return (
        f"i=0; while [ $i -lt {tries} ]; do"
        f' for d in /sys/block/*; do {read}; [ "$v" = {serial} ] && {found};'
        f" done; usleep 100000; i=$((i+1)); done;"
        f" echo 'no block device with serial {serial} appeared'; exit 1"
    )
