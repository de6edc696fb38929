"""``ab-harness env show``: U-Boot and GRUB environments from files and disk images."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.envformat import encode_env, encode_grubenv

REPO = Path(__file__).resolve().parent.parent
SIZE = 0x2000
OLD = {"boot_slot": "a", "upgrade_available": "0", "bootcmd": "run distro_bootcmd"}
NEW = {**OLD, "boot_slot": "b", "upgrade_available": "1"}


def lines(env: dict[str, str]) -> str:
    return "".join(f"{k}={env[k]}\n" for k in sorted(env))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(err: str, *mentions: str) -> None:
    assert err.startswith("ab-harness: error: ")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for text in mentions:
        assert text in err


@pytest.fixture
def redundant(tmp_path: Path) -> Path:
    """Two back-to-back copies; the second (flags 4) is newer than the first (flags 3)."""
    path = tmp_path / "env-redundant.bin"
    path.write_bytes(
        encode_env(OLD, SIZE, redundant_flags=3) + encode_env(NEW, SIZE, redundant_flags=4)
    )
    return path


def test_single_copy_prints_sorted_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "uboot.env"
    path.write_bytes(encode_env(OLD, SIZE))

    assert run(["env", "show", str(path)], capsys) == (0, lines(OLD), "")


@pytest.mark.parametrize("size", [None, "0x2000", "8192"])
def test_two_copies_prints_the_newer(
    redundant: Path, capsys: pytest.CaptureFixture[str], size: str | None
) -> None:
    argv = ["env", "show", str(redundant), "--copies", "2"]
    if size is not None:
        argv += ["--size", size]

    assert run(argv, capsys) == (0, lines(NEW), "")


def test_size_smaller_than_the_file_reads_the_leading_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "env-partition.bin"
    path.write_bytes(encode_env(OLD, SIZE) + bytes(SIZE))  # env at the start of a larger area

    assert run(["env", "show", str(path), "--size", hex(SIZE)], capsys) == (0, lines(OLD), "")
    status, _, err = run(["env", "show", str(path)], capsys)
    assert status == 1
    assert_one_line_error(err, str(path), "--size")


def test_grub_block_is_detected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grubenv"
    path.write_bytes(encode_grubenv({"saved_entry": "b", "boot_success": "1"}))

    assert run(["env", "show", str(path)], capsys) == (0, "boot_success=1\nsaved_entry=b\n", "")


def test_grub_block_refuses_uboot_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "grubenv"
    path.write_bytes(encode_grubenv({"saved_entry": "b"}))

    status, out, err = run(["env", "show", str(path), "--copies", "2"], capsys)

    assert (status, out) == (1, "")
    assert_one_line_error(err, str(path), "GRUB")


def test_no_valid_copy_is_one_line_and_exit_1(
    redundant: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blob = bytearray(redundant.read_bytes())
    blob[0] ^= 1
    blob[SIZE] ^= 1
    redundant.write_bytes(blob)

    status, out, err = run(["env", "show", str(redundant), "--copies", "2"], capsys)

    assert (status, out) == (1, "")
    assert_one_line_error(err, str(redundant), "CRC32", "fix:")


def test_unreadable_path_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.env"

    status, _, err = run(["env", "show", str(missing)], capsys)

    assert status == 1
    assert_one_line_error(err, str(missing))


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--size", "lots", "PATH"],
        ["--size", "0", "PATH"],
        ["--copies", "3", "PATH"],
        ["PATH", "--image", "disk.img", "--partition", "1", "--file", "uboot.env"],
        ["--image", "disk.img", "--partition", "1"],
        ["--image", "disk.img", "--file", "uboot.env"],
        ["PATH", "--file", "uboot.env"],
        ["--image", "disk.img", "--partition", "1", "--file", "a", "--file", "b", "--file", "c"],
        ["--image", "disk.img", "--partition", "1", "--file", "a", "--file", "b", "--copies", "1"],
    ],
    ids=str,
)
def test_usage_errors_exit_2(
    redundant: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    argv = ["env", "show", *(str(redundant) if a == "PATH" else a for a in extra)]

    with pytest.raises(SystemExit) as info:
        main(argv)

    assert info.value.code == 2
    assert "usage: ab-harness env show" in capsys.readouterr().err


def _disk_with(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A disk image whose partition 1 is FAT holding ``files``, built without root."""
    tools = {}
    for name in ("sfdisk", "mkfs.vfat", "mcopy"):
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
        if found is None:
            pytest.skip(f"{name} not installed (Debian: fdisk, dosfstools, mtools)")
        tools[name] = found
    image, boot = tmp_path / "disk.img", tmp_path / "boot.vfat"
    with image.open("wb") as f:
        f.truncate(8 << 20)
    script = b"label: dos\nstart=2048, size=8192, type=c\n"
    subprocess.run([tools["sfdisk"], "-q", str(image)], input=script, check=True)
    subprocess.run([tools["mkfs.vfat"], "-C", str(boot), "4096"], check=True, capture_output=True)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        subprocess.run(
            [tools["mcopy"], "-i", str(boot), str(tmp_path / name), f"::{name}"],
            check=True,
            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
        )
    subprocess.run(
        ["dd", f"if={boot}", f"of={image}", "bs=512", "seek=2048", "conv=notrunc"],
        check=True,
        capture_output=True,
    )
    return image


def test_reads_env_file_from_a_fat_partition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _disk_with(tmp_path, {"uboot.env": encode_env(OLD, SIZE)})
    argv = ["env", "show", "--image", str(image), "--partition", "1", "--file", "uboot.env"]

    assert run(argv, capsys) == (0, lines(OLD), "")


def test_two_files_are_two_redundant_copies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _disk_with(
        tmp_path,
        {
            "uboot.env": encode_env(NEW, SIZE, redundant_flags=0),  # 0 follows 255
            "uboot-redund.env": encode_env(OLD, SIZE, redundant_flags=255),
        },
    )
    argv = ["env", "show", "--image", str(image), "--partition", "1"]
    argv += ["--file", "uboot.env", "--file", "uboot-redund.env"]

    assert run(argv, capsys) == (0, lines(NEW), "")


def test_missing_file_in_partition_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _disk_with(tmp_path, {"uboot.env": encode_env(OLD, SIZE)})
    argv = ["env", "show", "--image", str(image), "--partition", "1", "--file", "uboot.env"]

    status, out, err = run([*argv, "--file", "uboot-redund.env"], capsys)

    assert (status, out) == (1, "")
    assert_one_line_error(err, str(image), "uboot-redund.env", "partition 1")


def test_runs_as_a_module(redundant: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "harness.cli", "env", "show", "--copies", "2"]

    good = subprocess.run(
        [*argv, str(redundant)], check=False, capture_output=True, text=True, env=env
    )
    bad = subprocess.run(
        [*argv, str(redundant) + ".missing"], check=False, capture_output=True, text=True, env=env
    )

    assert (good.returncode, good.stdout, good.stderr) == (0, lines(NEW), "")
    assert (bad.returncode, bad.stdout) == (1, "")
    assert_one_line_error(bad.stderr, ".missing")


def test_endless_input_without_size_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["env", "show", "/dev/zero"], capsys)

    assert (status, out) == (1, "")
    assert_one_line_error(err, "/dev/zero: larger than 1 MiB", "pass --size")


def test_endless_input_with_size_reads_only_that_much(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(
        ["env", "show", "/dev/zero", "--size", "0x2000", "--copies", "2"], capsys
    )

    assert (status, out) == (1, "")
    assert_one_line_error(err, "neither of the 2 copies (0x2000 bytes each)")


@pytest.mark.parametrize(("copy", "flags", "env"), [(1, 3, OLD), (2, 4, NEW)])
def test_one_copy_of_a_redundant_file_on_its_own(
    redundant: Path, capsys: pytest.CaptureFixture[str], copy: int, flags: int, env: dict[str, str]
) -> None:
    status, out, err = run(["env", "show", str(redundant), "--copy", str(copy)], capsys)

    header, _, rest = out.partition("\n")
    assert (status, rest, err) == (0, lines(env), "")
    offset = "0" if copy == 1 else f"{SIZE:#x}"
    assert header.startswith(f"# copy {copy} of 2 ({redundant}@{offset}): flags {flags}, CRC32 ok")


def test_one_copy_with_a_bad_crc_is_shown_and_exit_1(
    redundant: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blob = bytearray(redundant.read_bytes())
    at = SIZE + blob[SIZE:].index(b"boot_slot=b") + len("boot_slot=")
    blob[at] = ord("x")  # the newer copy, torn mid-write
    redundant.write_bytes(bytes(blob))

    status, out, _ = run(["env", "show", str(redundant), "--copy", "2"], capsys)
    assert status == 1
    assert "flags 4, CRC32 BAD (stored 0x" in out.splitlines()[0]
    assert "the bootloader skips this copy" in out
    assert "boot_slot=x\n" in out
    # The env as the bootloader loads it falls back to the good older copy.
    assert run(["env", "show", str(redundant), "--copies", "2"], capsys)[1] == lines(OLD)


def test_one_copy_of_two_files_in_a_partition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = _disk_with(
        tmp_path,
        {
            "uboot.env": encode_env(NEW, SIZE, redundant_flags=7),
            "uboot-redund.env": encode_env(OLD, SIZE, redundant_flags=6),
        },
    )
    argv = ["env", "show", "--image", str(image), "--partition", "1"]
    argv += ["--file", "uboot.env", "--file", "uboot-redund.env", "--copy", "2"]

    status, out, err = run(argv, capsys)

    header, _, rest = out.partition("\n")
    assert (status, rest, err) == (0, lines(OLD), "")
    assert header.startswith(f"# copy 2 of 2 ({image}:1:uboot-redund.env): flags 6, CRC32 ok")
