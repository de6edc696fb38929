"""The virtual board rig: the reference image run as a board in a lab.

Three parts on the loopback, each what a lab has for a real board:
- `SerialServer`, the board's UART as a raw TCP port (ser2net), which
  labgrid reaches with a `NetworkSerialPort` (protocol raw) and its
  `SerialDriver`;
- `PowerSwitch`, an HTTP outlet in labgrid's `simplerest` dialect, reached
  with a `NetworkPowerPort` and labgrid's `NetworkPowerDriver`;
- `PoweredMachine`, the board itself: QEMU started when the outlet goes on,
  killed when it goes off. It has a user-network NIC, so payloads arrive by
  network pull; no QMP and no hot-plug reach the harness.

A target whose YAML has `ab-harness.rig` is such a board: for each test the
harness starts a rig on free ports and fills them into the YAML's
`NetworkSerialPort.port` and `NetworkPowerPort.host`. `python -m harness.lab.rig`
runs one on fixed ports until it is stopped (a lab for labgrid's exporter).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessConfigError
from harness.images import ImageSet
from harness.lab.rig.board import MachineSpec, PoweredMachine
from harness.lab.rig.serial_server import SerialServer
from harness.lab.rig.switch import Outlet, PowerSwitch

log = logging.getLogger(__name__)

RIG_OPTIONS = {"memory": "the board's RAM (QEMU -m), default 512M"}


@dataclass
class VirtualRig:
    """A running rig: where its serial port and power switch answer."""

    serial: SerialServer
    switch: PowerSwitch
    machine: PoweredMachine
    disk: Path

    @property
    def serial_address(self) -> tuple[str, int]:
        return "127.0.0.1", self.serial.port

    @property
    def power_url(self) -> str:
        return self.switch.url

    def resources(self) -> dict[str, dict[str, Any]]:
        """The labgrid resources that reach this rig (for a target or an exporter)."""
        host, port = self.serial_address
        return {
            "NetworkSerialPort": {"host": host, "port": port, "protocol": "rfc2217"},
            "NetworkPowerPort": {"model": "simplerest", "host": self.power_url, "index": "0"},
        }


def machine_spec(image: ImageSet, disk: Path, options: Mapping[str, Any]) -> MachineSpec:
    unknown = sorted(set(options) - set(RIG_OPTIONS))
    if unknown:
        raise HarnessConfigError(
            f"ab-harness.rig has no option '{unknown[0]}'", f"use: {', '.join(RIG_OPTIONS)}"
        )
    qemu = image.manifest.get("qemu", {})
    return MachineSpec(
        qemu=str(qemu.get("system", "qemu-system-aarch64")),
        machine=str(qemu.get("machine", "virt")),
        cpu=str(qemu.get("cpu", "cortex-a57")),
        memory=str(options.get("memory", "512M")),
        bios=image.file("bios"),
        factory_env=image.file("factory_env"),
        disk=disk,
    )


@contextmanager
def virtual_rig(
    image: ImageSet,
    workdir: Path,
    options: Mapping[str, Any] | None = None,
    *,
    serial_port: int = 0,
    power_port: int = 0,
) -> Iterator[VirtualRig]:
    """Start a rig for `image` with its own copy of the disk in `workdir`; on exit
    (also on errors and Ctrl-C) QEMU is killed and both servers are closed."""
    workdir.mkdir(parents=True, exist_ok=True)
    disk = workdir / "board-disk.img"
    subprocess.run(
        ["cp", "--sparse=always", "--reflink=auto", str(image.file("disk")), str(disk)],
        check=True,
    )
    spec = machine_spec(image, disk, options or {})
    serial = SerialServer(port=serial_port)
    machine = PoweredMachine(spec, serial.uart_address, workdir)
    switch: PowerSwitch | None = None
    try:
        switch = PowerSwitch(
            Outlet(machine.on, machine.off, lambda: machine.is_on), port=power_port
        )
        log.info("virtual board rig: serial 127.0.0.1:%d, power %s", serial.port, switch.url)
        yield VirtualRig(serial, switch, machine, disk)
    finally:
        try:
            machine.close()
        finally:
            if switch is not None:
                with contextlib.suppress(Exception):
                    switch.close()
            serial.close()


def fill_resources(labgrid: Mapping[str, Any], rig: VirtualRig) -> dict[str, Any]:
    """The labgrid part of a target YAML with the rig's addresses in its
    `NetworkSerialPort` (host, port) and `NetworkPowerPort` (host URL)."""
    config: dict[str, Any] = copy.deepcopy(dict(labgrid))
    main = config.get("targets", {}).get("main", {})
    section = main.get("resources") or {}
    entries = section.items() if isinstance(section, dict) else [
        kv for entry in section if isinstance(entry, dict) for kv in entry.items()
    ]  # fmt: skip
    filled = rig.resources()
    found = set()
    for cls, args in entries:
        if cls in filled and isinstance(args, dict):
            want = filled[cls]
            keys = ("host", "port") if cls == "NetworkSerialPort" else ("host",)
            args.update({k: want[k] for k in keys})
            found.add(cls)
    missing = sorted(set(filled) - found)
    if missing:
        raise HarnessConfigError(
            f"a virtual board target (ab-harness.rig) needs the resource {missing[0]} "
            "in targets.main.resources",
            "see targets/virtual-board-uboot.yaml",
        )
    return config
