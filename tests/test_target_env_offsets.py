"""`ab-harness.env` at raw offsets of the disk (the stock target): parsed, validated,
and checked against a disk image, every error one line naming the file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.errors import HarnessConfigError
from harness.targets.target import EnvLocation, check_against_disk, default_targets_dir, load_target

STOCK = default_targets_dir() / "qemu-arm64-uboot-stock.yaml"
MIB = 1 << 20


def stock_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(STOCK.read_text())
    return data


def load_with(tmp_path: Path, **env: Any) -> str:
    """The one-line error of the stock target with `ab-harness.env` replaced."""
    data = stock_data()
    data["ab-harness"]["env"] = env
    path = tmp_path / "stock.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(HarnessConfigError) as info:
        load_target(str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    return message


def test_stock_target_keeps_its_env_at_two_offsets_of_the_disk() -> None:
    spec = load_target("qemu-arm64-uboot-stock")

    assert spec.bootloader == "uboot-mender"
    assert spec.update_client == "mender"
    assert spec.env == EnvLocation(0, (), 0x4000, (0x400000, 0x800000))
    assert spec.env.at_offsets and spec.env.copy_names == ("0x400000", "0x800000")


def test_offsets_may_be_hex_strings_and_one_copy(tmp_path: Path) -> None:
    data = stock_data()
    data["ab-harness"]["env"] = {"offsets": ["0x400000"], "size": "0x4000"}
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    assert load_target(str(path)).env == EnvLocation(0, (), 0x4000, (0x400000,))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"size": 0x4000}, "missing key 'ab-harness.env.offsets'"),
        ({"offsets": [], "size": 0x4000}, "'ab-harness.env.offsets' must list one or two"),
        ({"offsets": [0, 0x4000, 0x8000], "size": 0x4000}, "must list one or two offsets"),
        ({"offsets": ["far"], "size": 0x4000}, "'ab-harness.env.offsets' must hold numbers"),
        ({"offsets": [True], "size": 0x4000}, "'ab-harness.env.offsets' must hold numbers"),
        ({"offsets": [0x400001], "size": 0x4000}, "non-negative multiple of 512"),
        ({"offsets": [-512], "size": 0x4000}, "non-negative multiple of 512"),
        ({"offsets": [0x400000, 0x402000], "size": 0x4000}, "the two copies would overlap"),
        ({"offsets": 0x400000, "size": 0x4000}, "'ab-harness.env.offsets' must be list"),
        ({"offsets": [0x400000]}, "missing key 'ab-harness.env.size'"),
        ({"offsets": [0x400000], "size": 0x4000, "device": "mmcblk1"}, "'ab-harness.env.device'"),
        (
            {"offsets": [0x400000], "size": 0x4000, "files": ["uboot.env"]},
            "'ab-harness.env.files' is for a bootloader keeping its env in files",
        ),
    ],
)
def test_bad_offsets_are_one_line_naming_the_key(
    tmp_path: Path, env: dict[str, Any], expected: str
) -> None:
    assert expected in load_with(tmp_path, **env)


def test_offsets_on_a_bootloader_with_env_files_say_which_kind_takes_them(
    tmp_path: Path,
) -> None:
    data = yaml.safe_load((default_targets_dir() / "qemu-arm64-uboot.yaml").read_text())
    data["ab-harness"]["env"] = {"offsets": [0x400000], "size": 0x4000}
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    with pytest.raises(HarnessConfigError) as info:
        load_target(str(path))

    assert "'ab-harness.env.offsets' is for a bootloader keeping its env at raw offsets" in str(
        info.value
    )
    assert "uboot-mender" in str(info.value)


def _disk(tmp_path: Path, first_mib: int) -> Path:
    """A 32 MiB MBR disk whose four ext4-looking partitions start at `first_mib`."""
    import subprocess

    disk = tmp_path / "disk.img"
    with disk.open("wb") as f:
        f.truncate(32 * MIB)
    table = "label: dos\n" + "".join(
        f"start={(first_mib + 2 * i) * MIB // 512}, size={2 * MIB // 512}, type=83\n"
        for i in range(4)
    )
    subprocess.run(["sfdisk", "-q", str(disk)], input=table.encode(), check=True)
    with disk.open("r+b") as f:
        for i in (1, 2):  # the slots' ext4 magic
            f.seek((first_mib + 2 * i) * MIB + 1080)
            f.write(b"\x53\xef")
    return disk


def test_env_offsets_fit_a_disk_whose_partitions_start_after_them(tmp_path: Path) -> None:
    check_against_disk(load_target("qemu-arm64-uboot-stock"), _disk(tmp_path, 16))


def test_env_offsets_inside_a_partition_name_the_partition(tmp_path: Path) -> None:
    with pytest.raises(HarnessConfigError) as info:
        check_against_disk(load_target("qemu-arm64-uboot-stock"), _disk(tmp_path, 1))

    message = str(info.value)
    assert "ab-harness.env.offsets has a copy at 0x400000..0x404000 inside partition 2" in message
    assert "CONFIG_ENV_OFFSET" in message


@pytest.mark.parametrize("kind", ["uboot-rauc", "uboot-swupdate"])
def test_rauc_and_swupdate_u_boot_keep_their_env_at_offsets(tmp_path: Path, kind: str) -> None:
    data = stock_data()
    data["ab-harness"]["bootloader"] = kind
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    assert load_target(str(path)).env == EnvLocation(0, (), 0x4000, (0x400000, 0x800000))


def test_rauc_grub_keeps_its_env_in_one_grubenv_file(tmp_path: Path) -> None:
    data = stock_data()
    data["ab-harness"]["bootloader"] = "grub-rauc"
    data["ab-harness"]["env"] = {"partition": 1, "files": ["EFI/BOOT/grubenv"], "size": 1024}
    path = tmp_path / "grub-rauc.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert load_target(str(path)).env.files == ("EFI/BOOT/grubenv",)

    data["ab-harness"]["env"]["files"] = ["grubenv", "grubenv.bak"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(HarnessConfigError, match="must list one grubenv file"):
        load_target(str(path))
