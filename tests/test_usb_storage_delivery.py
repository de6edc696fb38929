"""Delivery on a storage medium, without the hardware: what labgrid's drivers
allow for real.

The medium is a loop device (a real block device, backed by a file this test
makes): labgrid's own `USBStorageDriver.write_image` writes the payload onto
it (its dd, O_DIRECT, fdatasync; its wait for the medium in sysfs), and the
board's side of the delivery (the busybox script that waits for the medium,
hashes the payload's bytes there and refuses anything else) runs in the
host's busybox against the same device. labgrid's `USBSDMuxDriver` runs too;
its `usbsdmux` tool is a stand-in that records the modes it is asked for, so
what is proved is the order host → write → dut, not a mux switching.

Not proved here (needs the hardware, see docs/guide/boards-and-labs.md): udev finding a real
stick or mux, a real mux switching, a board's kernel seeing the medium.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attr
import pytest
from labgrid import Target
from labgrid.driver import USBSDMuxDriver, USBStorageDriver
from labgrid.resource import USBSDMuxDevice
from labgrid.resource.common import ResourceManager

from harness.delivery import DeliveryRefused, MediumWrite
from harness.delivery.push import Pusher
from harness.images import Payload

MIB = 1 << 20


@attr.s(eq=False)
class LoopSDMux(USBSDMuxDevice):
    """A USBSDMuxDevice whose card is a loop device: the paths are given, not
    found by udev (the one part of labgrid this test replaces)."""

    manager_cls = ResourceManager
    given_disk = attr.ib(default="")
    given_control = attr.ib(default="")

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.disk_path, self.control_path = self.given_disk, self.given_control

    def poll(self) -> None:
        """Nothing to discover."""


class HostBusybox:
    """The board's shell, played by the host's busybox: the delivery's device-side
    script runs as it would on the board, against the same block device."""

    def __init__(self) -> None:
        self.before: list[str] = []

    def exec(self, cmd: str, timeout_s: float = 30.0) -> tuple[int, str]:
        for step in self.before:
            subprocess.run(step, shell=True, check=True)
        done = subprocess.run(
            ["busybox", "sh", "-c", cmd],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        return done.returncode, done.stdout + done.stderr

    def exec0(self, cmd: str, timeout_s: float = 30.0) -> str:
        code, out = self.exec(cmd, timeout_s)
        assert code == 0, out
        return out


@contextmanager
def loop_device(backing: Path) -> Iterator[str]:
    """`backing` as a block device (a loop device), detached on exit."""
    if os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("busybox") is None:
        pytest.skip("needs root, losetup and busybox (a loop device plays the medium)")
    done = subprocess.run(
        ["losetup", "-f", "--show", str(backing)], check=False, capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"no loop device here: {done.stderr.strip()}")
    node = done.stdout.strip()
    try:
        yield node
    finally:
        subprocess.run(["losetup", "-d", node], check=False)


@pytest.fixture
def medium(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A 16 MiB loop device (the "SD card") and its backing file."""
    backing = tmp_path / "card.img"
    backing.write_bytes(b"\0" * 16 * MIB)
    with loop_device(backing) as node:
        yield node, backing


def _bench(tmp_path: Path, node: str) -> tuple[Target, Path]:
    """A labgrid target for the lab host's side: the card (or stick), its
    USBStorageDriver, and a USBSDMuxDriver whose tool records each mode."""
    log = tmp_path / "mux.log"
    tool = tmp_path / "usbsdmux"
    # Records each mode with what the card held then (its first 16 bytes' hash).
    tool.write_text(f'#!/bin/sh\necho "$2 $(head -c 16 {node} | sha256sum | cut -c1-8)" >> {log}\n')
    tool.chmod(0o755)
    target = Target("bench")
    LoopSDMux(target, "card", given_disk=node, given_control=str(tmp_path / "sg0"))
    USBStorageDriver(target, "storage")
    mux = USBSDMuxDriver(target, "mux")
    mux.tool = str(tool)
    return target, log


@pytest.fixture
def rig(tmp_path: Path, medium: tuple[str, Path]) -> tuple[Target, Path, str]:
    node, _ = medium
    log = tmp_path / "mux.log"
    tool = tmp_path / "usbsdmux"
    # Records each mode with what the card held then (its first 16 bytes' hash).
    tool.write_text(f'#!/bin/sh\necho "$2 $(head -c 16 {node} | sha256sum | cut -c1-8)" >> {log}\n')
    tool.chmod(0o755)
    target = Target("bench")
    LoopSDMux(target, "card", given_disk=node, given_control=str(tmp_path / "sg0"))
    USBStorageDriver(target, "storage")
    mux = USBSDMuxDriver(target, "mux")
    mux.tool = str(tool)
    return target, log, node


def _payload(tmp_path: Path, size: int, name: str = "v2") -> Payload:
    path = tmp_path / f"rootfs-{name}.img"
    path.write_bytes(os.urandom(size))
    return Payload(name, path, hashlib.sha256(path.read_bytes()).hexdigest(), "2")


def test_labgrid_writes_the_payload_onto_the_card_between_host_and_dut(
    tmp_path: Path, rig: tuple[Target, Path, str], medium: tuple[str, Path]
):
    target, log, node = rig
    _, backing = medium
    payload = _payload(tmp_path, 3 * MIB)
    shell = HostBusybox()
    delivery = MediumWrite.from_options(
        target, target.get_driver(USBStorageDriver, activate=False),
        target.get_driver(USBSDMuxDriver, activate=False), shell,
        {"device_path": node, "mux": True, "appear_timeout_s": 5, "copy_dir": str(tmp_path)},
    )  # fmt: skip
    try:
        delivered = delivery.deliver(payload)
    finally:
        delivery.close()

    # labgrid's dd reached the medium: its backing file holds the payload's bytes.
    with backing.open("rb") as f:
        assert hashlib.sha256(f.read(payload.size)).hexdigest() == payload.sha256
    # The mux went to the host before the write (the card still blank) and to
    # the board after it (the card holding the payload).
    blank = hashlib.sha256(b"\0" * 16).hexdigest()[:8]
    head = hashlib.sha256(payload.path.read_bytes()[:16]).hexdigest()[:8]
    assert log.read_text().split("\n")[:2] == [f"host {blank}", f"dut {head}"]
    assert delivery.switches == ["host", "dut"]
    # A card larger than the payload: the board copies the payload's bytes only.
    assert delivered.device_path == f"{tmp_path}/ab-payload-v2"
    assert f"ab-medium: {16 * MIB} {payload.sha256}" in str(delivered.detail["device_output"])
    copied = Path(delivered.device_path).read_bytes()
    assert hashlib.sha256(copied).hexdigest() == payload.sha256


def test_a_medium_whose_bytes_changed_is_refused_on_the_board(
    tmp_path: Path, rig: tuple[Target, Path, str]
):
    target, _, node = rig
    payload = _payload(tmp_path, 2 * MIB)
    shell = HostBusybox()
    # Between labgrid's write and the board's read, one byte of the card flips.
    shell.before.append(
        f"printf '\\377' | dd of={node} bs=1 seek={MIB} conv=notrunc,fsync 2>/dev/null"
    )
    delivery = MediumWrite.from_options(
        target, target.get_driver(USBStorageDriver, activate=False), None, shell,
        {"device_path": node, "appear_timeout_s": 5, "copy_dir": str(tmp_path)},
    )  # fmt: skip
    try:
        with pytest.raises(DeliveryRefused) as info:
            delivery.deliver(payload)
    finally:
        delivery.close()
    assert "not payload 'v2'" in str(info.value)
    assert not (tmp_path / "ab-payload-v2").exists()  # nothing for the client


def test_a_medium_that_never_reaches_the_board_is_refused_within_its_deadline(
    tmp_path: Path, rig: tuple[Target, Path, str]
):
    target, _, _ = rig
    delivery = MediumWrite.from_options(
        target, target.get_driver(USBStorageDriver, activate=False), None, HostBusybox(),
        {"device_path": "/dev/ab-no-such-medium", "appear_timeout_s": 2, "copy_dir": str(tmp_path)},
    )  # fmt: skip
    try:
        with pytest.raises(DeliveryRefused) as info:
            delivery.deliver(_payload(tmp_path, MIB))
    finally:
        delivery.close()
    assert "never appeared" in str(info.value)


@pytest.mark.qemu
@pytest.mark.nightly
@pytest.mark.ab_target("qemu-arm64-uboot")
def test_the_board_installs_from_the_card_labgrid_wrote_and_boots_it(
    tmp_path, booted, push, shell, evidence, update_client, payloads
):
    """End to end on the reference machine: labgrid writes v2 onto the card
    (a loop device), the mux goes to the board, which here is QEMU hot-plugging
    the card's file (a real mux would re-enumerate the card), the board checks
    the bytes on it, its client installs from it, and B boots v2 and commits."""
    payload = payloads["v2"]
    card = tmp_path / "card.img"
    card.write_bytes(b"\0" * payload.size)
    with loop_device(card) as node:
        bench, log = _bench(tmp_path, node)
        card_as_payload = Payload("card", card, "", "")

        def plug_card_into_board() -> str:
            return push.delivery.deliver(card_as_payload).device_path

        delivery = MediumWrite(
            bench, bench.get_driver(USBStorageDriver, activate=False),
            bench.get_driver(USBSDMuxDriver, activate=False), shell,
            device_path="", attach=plug_card_into_board,
        )  # fmt: skip
        try:
            report = Pusher(delivery, shell, steps=evidence, client=update_client).install(payload)
        finally:
            delivery.close()
    assert report.ok, report.output
    assert report.attached is not None and report.attached.via.startswith("written to the")
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["host", "dut"]
    assert [(b.running_slot, b.version, b.health) for b in booted.reboot()] == [("B", "2", "pass")]
