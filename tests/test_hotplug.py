"""Hot-plug places: what QEMU is started with and what a payload is plugged in as."""

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.machines.hotplug import find_by_serial_script, ports, qemu_args


def test_pcie_ports_are_root_ports_each_taking_a_virtio_disk() -> None:
    assert qemu_args("pcie", 2) == [
        "-device",
        "pcie-root-port,id=ab-hp0,chassis=1,bus=pcie.0",
        "-device",
        "pcie-root-port,id=ab-hp1,chassis=2,bus=pcie.0",
    ]
    assert ports("pcie", 2)[1].device_add("n2", "ab-key2") == {
        "driver": "virtio-blk-pci",
        "drive": "n2",
        "id": "ab-key2",
        "serial": "ab-key2",
        "bus": "ab-hp1",
    }


def test_scsi_ports_are_ids_on_one_cold_plugged_virtio_scsi_controller() -> None:
    assert qemu_args("scsi", 4) == ["-device", "virtio-scsi-pci,id=ab-scsi,bus=pcie.0"]
    assert qemu_args("scsi", 0) == []
    plugged = [p.device_add(f"n{i}", f"ab-key{i}") for i, p in enumerate(ports("scsi", 3))]
    assert {d["driver"] for d in plugged} == {"scsi-hd"}
    assert {d["bus"] for d in plugged} == {"ab-scsi.0"}
    assert [d["scsi-id"] for d in plugged] == [0, 1, 2]


def _search(sys_block: Path, serial: str) -> subprocess.CompletedProcess[str]:
    """Run the device-side search under busybox with `sys_block` bound over
    /sys/block in a private mount namespace (the host's stays as it is)."""
    inner = 'mount --bind "$0" /sys/block && exec busybox sh -c "$1"'
    script = find_by_serial_script(serial, 2)
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", inner, str(sys_block), script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_the_device_side_search_finds_virtio_and_scsi_serials(tmp_path: Path) -> None:
    (tmp_path / "vda").mkdir()
    (tmp_path / "vda" / "serial").write_text("")  # the boot disk: no serial
    (tmp_path / "vdb").mkdir()
    (tmp_path / "vdb" / "serial").write_text("ab-key1")
    (tmp_path / "sda" / "device").mkdir(parents=True)
    # SCSI unit serial number VPD page: 4-byte header, then the serial.
    (tmp_path / "sda" / "device" / "vpd_pg80").write_bytes(b"\x00\x80\x00\x07ab-key2")
    probe = _search(tmp_path, "ab-key1")
    if "mount" in probe.stderr:
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")

    assert probe.stdout.strip() == "/dev/vdb"
    assert _search(tmp_path, "ab-key2").stdout.strip() == "/dev/sda"
    missing = _search(tmp_path, "ab-key3")
    assert missing.returncode == 1
    assert "no block device with serial ab-key3 appeared" in missing.stdout


def test_usb_keys_plug_into_an_xhci_controller_as_usb_storage() -> None:
    assert qemu_args("usb", 2) == ["-device", "qemu-xhci,id=ab-xhci,bus=pcie.0,p2=8,p3=8"]
    plugged = [p.device_add(f"n{i}", f"ab-key{i}") for i, p in enumerate(ports("usb", 2))]
    assert {(d["driver"], d["bus"]) for d in plugged} == {("usb-storage", "ab-xhci.0")}
    assert [d["serial"] for d in plugged] == ["ab-key0", "ab-key1"]


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_the_device_side_search_finds_a_usb_keys_serial_above_the_disk(tmp_path: Path) -> None:
    # sysfs: the disk's device link points into the USB device's subtree.
    usb = tmp_path / "devices" / "usb2" / "2-1"
    scsi = usb / "2-1:1.0" / "host0" / "target0:0:0" / "0:0:0:0"
    scsi.mkdir(parents=True)
    for level, serial in ((tmp_path / "devices" / "usb2", "0000:00:02.0"), (usb, "ab-key4")):
        (level / "idVendor").write_text("46f4\n")
        (level / "serial").write_text(serial + "\n")
    blocks = tmp_path / "block"
    (blocks / "sda").mkdir(parents=True)
    (blocks / "sda" / "device").symlink_to(scsi)
    probe = _search(blocks, "ab-key4")
    if "mount" in probe.stderr:
        pytest.skip(f"no private mount namespace here: {probe.stderr.strip()}")
    assert probe.stdout.strip() == "/dev/sda", probe
