"""Observer: two witnesses of the running slot must agree; the data manifest is parsed
from the device's sha256sum output; slot hashes come from the disk image on the host."""

import hashlib
from pathlib import Path

import pytest
from fatdisk import ROOT_SECTORS, SECTOR, build_fat_disk

from harness.bootloaders import bootloader_for
from harness.device.observe import Observer
from harness.errors import DeviceError, HarnessConfigError
from harness.targets.target import load_target


class CannedShell:
    """A ShellLike with fixed outputs per command."""

    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs

    def exec(self, cmd: str, timeout_s: float = 30.0) -> tuple[int, str]:
        return 0, self.outputs[cmd]

    def exec0(self, cmd: str, timeout_s: float = 30.0) -> str:
        return self.outputs[cmd]


SLOT_CMD = "cat /proc/cmdline; echo; cat /etc/slot; cat /etc/version"


def observer(outputs: dict[str, str], disk: Path | None = None) -> Observer:
    spec = load_target("qemu-arm64-uboot")
    return Observer(spec, bootloader_for(spec.bootloader, spec.env), CannedShell(outputs), disk)


def test_booted_slot_when_cmdline_and_etc_slot_agree() -> None:
    out = "console=ttyAMA0 root=/dev/vda3 ro rootwait\n\nB\n2\n"
    seen = observer({SLOT_CMD: out}).booted_slot()
    assert (seen.slot, seen.cmdline_root, seen.version) == ("B", "/dev/vda3", "2")


def test_booted_slot_raises_when_the_witnesses_disagree() -> None:
    out = "console=ttyAMA0 root=/dev/vda2 ro\n\nB\n2\n"
    with pytest.raises(DeviceError, match="slot witnesses disagree"):
        observer({SLOT_CMD: out}).booted_slot()


def test_data_manifest_maps_paths_to_hashes() -> None:
    cmd = "cd /data && find . -type f | sort | xargs -r sha256sum"
    out = f"{'a' * 64}  ./README\n{'b' * 64}  ./dir/file with space\n"
    assert observer({cmd: out}).data_manifest() == {
        "./README": "a" * 64,
        "./dir/file with space": "b" * 64,
    }


def test_slot_sha256_hashes_the_partition_on_the_host(tmp_path: Path) -> None:
    rootfs = bytes(range(256)) * (ROOT_SECTORS * SECTOR // 256)
    disk = build_fat_disk(tmp_path, {"uboot.env": b"x"}, rootfs=rootfs)
    seen = observer({}, disk)
    # Partition 2 of the test disk stands in for slot A here.
    assert seen.partition_sha256(2) == hashlib.sha256(rootfs).hexdigest()


def test_host_env_needs_a_disk_image() -> None:
    with pytest.raises(HarnessConfigError, match="no disk image"):
        observer({}).env_host()
