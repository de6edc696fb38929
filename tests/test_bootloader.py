"""The U-Boot side of the A/B contract: typed env values, console markers, and the env
read out of a real FAT disk image (built with sfdisk, mkfs.vfat, mcopy, dd, mkenvimage)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from fatdisk import build_fat_disk, tool

from harness.bootloaders import BootEnv, UBootFileEnv, bootloader_for
from harness.device.serial_log import SerialRecorder
from harness.envformat import EnvCorrupt
from harness.errors import DeviceError
from harness.targets.target import EnvLocation

ENV_SIZE = 0x4000
FILES = ("uboot.env", "uboot-redund.env")

OLD = {"mender_boot_part": "2", "upgrade_available": "0", "bootcount": "0", "bootlimit": "1"}
NEW = {"mender_boot_part": "3", "upgrade_available": "1", "bootcount": "10", "bootlimit": "1"}


def mkenvimage(tmp_path: Path, name: str, env: Mapping[str, str], *, redundant: bool) -> Path:
    text = tmp_path / f"{name}.txt"
    text.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    out = tmp_path / name
    argv = [tool("mkenvimage"), "-s", str(ENV_SIZE), "-o", str(out), str(text)]
    if redundant:
        argv.insert(1, "-r")
    subprocess.run(argv, check=True, capture_output=True)
    return out


def set_flags(env_file: Path, flags: int) -> None:
    # The flag byte follows the CRC and is not covered by it.
    data = bytearray(env_file.read_bytes())
    data[4] = flags
    env_file.write_bytes(bytes(data))


def corrupt_crc(env_file: Path) -> None:
    data = bytearray(env_file.read_bytes())
    data[0] ^= 0xFF
    env_file.write_bytes(bytes(data))


def build_disk(tmp_path: Path, env_files: Mapping[str, Path]) -> Path:
    """A disk image whose FAT partition 1 holds env_files; partition 2 is a dummy rootfs."""
    return build_fat_disk(tmp_path, {name: path.read_bytes() for name, path in env_files.items()})


def redundant_disk(tmp_path: Path, *, corrupt: str | None = None) -> Path:
    """Two redundant copies: uboot.env holds OLD (flags 1), uboot-redund.env NEW (flags 2)."""
    first = mkenvimage(tmp_path, FILES[0], OLD, redundant=True)
    second = mkenvimage(tmp_path, FILES[1], NEW, redundant=True)
    set_flags(second, 2)
    if corrupt is not None:
        corrupt_crc(tmp_path / corrupt)
    return build_disk(tmp_path, {FILES[0]: first, FILES[1]: second})


def uboot(files: tuple[str, ...] = FILES) -> UBootFileEnv:
    return UBootFileEnv(EnvLocation(partition=1, files=files, size=ENV_SIZE))


# -- BootEnv --------------------------------------------------------------------------


def test_counters_are_decimal_as_u_boot_reads_them() -> None:
    env = BootEnv({"bootcount": "10", "bootlimit": "3", "mender_boot_part": "3"}, "test")

    assert env.bootcount == 10
    assert env.bootlimit == 3
    assert env.boot_part == 3


def test_missing_values_have_documented_defaults() -> None:
    env = BootEnv({}, "test")

    assert env.bootcount == 0
    assert env.bootlimit is None
    assert env.boot_part is None
    assert env.upgrade_available is False
    assert env.get("bootcount") is None
    assert env.get("bootcount", "0") == "0"


def test_empty_bootcount_counts_as_zero() -> None:
    assert BootEnv({"bootcount": ""}, "test").bootcount == 0


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("0", False), ("yes", False)])
def test_upgrade_available_is_exactly_one(raw: str, expected: bool) -> None:
    assert BootEnv({"upgrade_available": raw}, "test").upgrade_available is expected


def test_vars_and_detail_are_immutable_copies() -> None:
    source = {"bootcount": "1"}
    detail = {"copy": "uboot.env"}
    env = BootEnv(source, "test", detail)

    source["bootcount"] = "2"
    detail["copy"] = "other"
    with pytest.raises(TypeError):
        env.vars["bootcount"] = "3"  # type: ignore[index]
    with pytest.raises(TypeError):
        env.detail["copy"] = "x"  # type: ignore[index]

    assert env.bootcount == 1
    assert env.detail == {"copy": "uboot.env"}


def test_as_dict_is_sorted_and_detached() -> None:
    env = BootEnv({"z": "1", "a": "2"}, "test")

    plain = env.as_dict()
    plain["a"] = "changed"

    assert list(env.as_dict()) == ["a", "z"]
    assert env.vars["a"] == "2"


# -- console markers ----------------------------------------------------------------------


BANNER_LINE = b"\r\n\r\nU-Boot 2023.01+dfsg-2 (Jan 08 2023 - 09:27:08 +0000)\r\n"


def test_banner_matches_at_a_line_start() -> None:
    banner = uboot().markers.banner

    assert banner.search(BANNER_LINE) is not None
    assert banner.search(b"reboot: Restarting system\r\nU-Boot 2023.01 (x)") is not None
    assert banner.search(b"U-Boot 2024.04") is not None


@pytest.mark.parametrize(
    "line",
    [
        b"ab-shell# echo U-Boot 2023.01\r\n",
        b"\r\nab-shell# grep 'U-Boot 2023.01' /proc/cmdline\r\n",
        b"\r\nU-Boot SPL 2023.01\r\n",
    ],
)
def test_banner_ignores_mid_line_mentions(line: bytes) -> None:
    assert uboot().markers.banner.search(line) is None


def test_banner_splits_a_recorded_console_into_boots() -> None:
    # The recorder anchors the banner at line starts itself (live.py hands it
    # this pattern), so the banner must match there, not just after a blank line.
    recorder = SerialRecorder(uboot().markers.banner, clock=lambda: 0.0)
    stream = (
        BANNER_LINE
        + b"ab-boot: slot=B part=3\r\nreboot: Restarting system\r\n"
        + b"U-Boot 2023.01+dfsg-2 (Jan 08 2023)\r\nab-boot: slot=A part=2\r\n"
        + b"\n\rU-Boot 2023.01+dfsg-2 (Jan 08 2023)\n\rab-boot: slot=A part=2\n\r"
    )

    recorder.feed(stream)

    boots = recorder.boots()
    assert [b.index for b in boots] == [0, 1, 2, 3]
    assert boots[1].text.startswith(b"U-Boot 2023.01")
    assert boots[2].text.startswith(b"U-Boot 2023.01")
    assert boots[3].text.startswith(b"\rU-Boot 2023.01")


def test_decision_line_gives_slot_bootcount_and_upgrade_flag() -> None:
    decision = uboot().markers.decision
    assert decision is not None
    line = b"\r\nab-boot: slot=B part=3 bootcount=1 upgrade_available=1 bootlimit=1 env=b\r\n"

    match = decision.search(line)

    assert match is not None
    assert match.group("slot", "bootcount", "upgrade_available") == (b"B", b"1", b"1")


def test_decision_line_needs_a_line_start() -> None:
    decision = uboot().markers.decision
    assert decision is not None

    assert decision.search(b"# echo ab-boot: slot=B part=3 bootcount=1 upgrade_available=1") is None


def test_bootloader_for_names_its_contracts() -> None:
    location = EnvLocation(1, FILES, ENV_SIZE)

    assert bootloader_for("uboot", location) == UBootFileEnv(location)
    with pytest.raises(DeviceError, match="no bootloader contract named 'grub'"):
        bootloader_for("grub", location)


# -- env from a disk image --------------------------------------------------------------


def test_redundant_env_uses_the_newer_copy(tmp_path: Path) -> None:
    disk = redundant_disk(tmp_path)

    env = uboot().env_from_image(disk)

    assert dict(env.vars) == NEW
    assert env.detail == {"copy": "uboot-redund.env", "flags": "2"}
    assert env.source == "host:disk.img p1:uboot.env+uboot-redund.env"
    assert env.bootcount == 10
    assert env.boot_part == 3


def test_redundant_env_with_the_newer_copy_corrupt_uses_the_older(tmp_path: Path) -> None:
    disk = redundant_disk(tmp_path, corrupt=FILES[1])

    env = uboot().env_from_image(disk)

    assert dict(env.vars) == OLD
    assert env.detail == {"copy": "uboot.env", "flags": "1"}


def test_redundant_env_with_the_older_copy_corrupt_uses_the_newer(tmp_path: Path) -> None:
    disk = redundant_disk(tmp_path, corrupt=FILES[0])

    env = uboot().env_from_image(disk)

    assert dict(env.vars) == NEW
    assert env.detail["copy"] == "uboot-redund.env"


def test_both_copies_corrupt_is_an_env_corrupt_error(tmp_path: Path) -> None:
    first = mkenvimage(tmp_path, FILES[0], OLD, redundant=True)
    second = mkenvimage(tmp_path, FILES[1], NEW, redundant=True)
    corrupt_crc(first)
    corrupt_crc(second)
    disk = build_disk(tmp_path, {FILES[0]: first, FILES[1]: second})

    with pytest.raises(EnvCorrupt) as info:
        uboot().env_from_image(disk)

    assert "\n" not in str(info.value)
    assert "disk.img p1:uboot.env+uboot-redund.env" in str(info.value)


def test_single_file_env_is_the_plain_layout(tmp_path: Path) -> None:
    # One file means U-Boot without CONFIG_SYS_REDUNDAND_ENVIRONMENT: crc | data,
    # no flag byte. mkenvimage without -r writes exactly that.
    single = mkenvimage(tmp_path, "uboot.env", NEW, redundant=False)
    disk = build_disk(tmp_path, {"uboot.env": single})

    env = uboot(("uboot.env",)).env_from_image(disk)

    assert dict(env.vars) == NEW
    assert env.detail == {"copy": "uboot.env"}
    assert env.source == "host:disk.img p1:uboot.env"


def test_single_file_env_rejects_a_redundant_copy(tmp_path: Path) -> None:
    # A redundant copy read as the plain layout is off by the flag byte: bad CRC.
    redundant = mkenvimage(tmp_path, "uboot.env", NEW, redundant=True)
    disk = build_disk(tmp_path, {"uboot.env": redundant})

    with pytest.raises(EnvCorrupt):
        uboot(("uboot.env",)).env_from_image(disk)


# -- env from the device ------------------------------------------------------------------


class FakeShell:
    """Canned answers for fw_printenv; records the commands it was given."""

    def __init__(self, code: int, out: str) -> None:
        self.code = code
        self.out = out
        self.commands: list[str] = []

    def exec(self, cmd: str, timeout_s: float = 30.0) -> tuple[int, str]:
        self.commands.append(cmd)
        return self.code, self.out

    def exec0(self, cmd: str, timeout_s: float = 30.0) -> str:
        code, out = self.exec(cmd, timeout_s)
        if code != 0:
            raise DeviceError(f"exit {code}")
        return out


def test_env_from_device_parses_fw_printenv() -> None:
    shell = FakeShell(
        0,
        "bootcmd=run distro_bootcmd; echo a=b\n"
        "bootcount=2\n"
        "empty=\n"
        "mender_boot_part=3\n"
        "upgrade_available=1\n"
        "Warning: some libubootenv chatter\n",
    )

    env = uboot().env_from_device(shell)

    assert shell.commands == ["fw_printenv"]
    assert dict(env.vars) == {
        "bootcmd": "run distro_bootcmd; echo a=b",
        "bootcount": "2",
        "empty": "",
        "mender_boot_part": "3",
        "upgrade_available": "1",
    }
    assert env.source == "device:fw_printenv"
    assert env.upgrade_available
    assert env.boot_part == 3


def test_env_from_device_failure_is_one_line() -> None:
    shell = FakeShell(
        243,
        "Cannot read environment, using default\nCannot read default environment from file\n",
    )

    with pytest.raises(DeviceError) as info:
        uboot().env_from_device(shell)

    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"exit 243\): Cannot read default environment from file", message)
    assert "fw_env.config" in message


def test_env_from_device_failure_without_output() -> None:
    with pytest.raises(DeviceError, match=r"exit 1\): no output"):
        uboot().env_from_device(FakeShell(1, ""))
