"""U-Boot env reader/writer, cross-checked with mkenvimage and libubootenv's fw_*env tools."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest
from fatdisk import tool

from harness.envformat.uboot import EnvCorrupt, UBootEnv, encode_env, parse_env, parse_env_copies
from harness.errors import HarnessConfigError

SIZE = 0x4000
VARS = {
    "bootcmd": "run distro_bootcmd",
    "boot_slot": "a",
    "upgrade_available": "1",
    "bootargs": "console=ttyAMA0 root=/dev/vda2 rw",
    "empty": "",
    "greeting": "grüße",
}


def mkenvimage(
    tmp_path: Path,
    env: Mapping[str, str],
    size: int,
    *,
    redundant: bool = False,
    fill: int = 0xFF,
) -> bytes:
    text = tmp_path / "mkenvimage.txt"
    text.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    out = tmp_path / "mkenvimage.bin"
    argv = [tool("mkenvimage"), "-s", str(size), "-p", str(fill), "-o", str(out), str(text)]
    if redundant:
        argv.insert(1, "-r")
    subprocess.run(argv, check=True, capture_output=True)
    return out.read_bytes()


def fw_config(tmp_path: Path, *copies: tuple[Path, int]) -> Path:
    """An fw_env.config with one ``device offset size`` line per copy."""
    config = tmp_path / "fw_env.config"
    config.write_text("".join(f"{dev} {off:#x} {SIZE:#x}\n" for dev, off in copies))
    return config


def fw_printenv(config: Path) -> dict[str, str]:
    proc = subprocess.run([tool("fw_printenv"), "-c", str(config)], check=True, capture_output=True)
    lines = proc.stdout.decode("utf-8", "surrogateescape").splitlines()
    return dict(line.split("=", 1) for line in lines)


def fw_setenv(config: Path, key: str, *value: str) -> None:
    subprocess.run(
        [tool("fw_setenv"), "-c", str(config), key, *value], check=True, capture_output=True
    )


def two_files(tmp_path: Path, copy0: bytes, copy1: bytes) -> tuple[Path, Path, Path]:
    """Redundant copies in uboot.env and uboot-redund.env, and their fw_env.config."""
    first, second = tmp_path / "uboot.env", tmp_path / "uboot-redund.env"
    first.write_bytes(copy0)
    second.write_bytes(copy1)
    return first, second, fw_config(tmp_path, (first, 0), (second, 0))


def read_copies(first: Path, second: Path) -> UBootEnv:
    return parse_env_copies([first.read_bytes(), second.read_bytes()], f"{first} + {second}")


def test_reads_single_copy_written_by_mkenvimage(tmp_path: Path) -> None:
    env = parse_env(mkenvimage(tmp_path, VARS, SIZE))

    assert dict(env.vars) == VARS
    assert (env.copy_index, env.flags, env.valid_copies) == (0, None, (0,))


@pytest.mark.parametrize(
    ("redundant", "fill"),
    [(False, 0xFF), (False, 0x00), (True, 0xFF)],
    ids=["single", "single-zero-fill", "redundant"],
)
def test_encoding_is_byte_identical_to_mkenvimage(
    tmp_path: Path, redundant: bool, fill: int
) -> None:
    expected = mkenvimage(tmp_path, VARS, SIZE, redundant=redundant, fill=fill)

    assert encode_env(VARS, SIZE, redundant_flags=1 if redundant else None, fill=fill) == expected


def test_mkenvimage_marks_redundant_copies_with_flag_1(tmp_path: Path) -> None:
    copy = mkenvimage(tmp_path, VARS, SIZE, redundant=True)

    env = parse_env(copy + copy, copies=2)

    assert copy[4] == 1
    assert (env.copy_index, env.flags, env.valid_copies) == (0, 1, (0, 1))
    assert dict(env.vars) == VARS


def test_fw_printenv_reads_what_we_encode(tmp_path: Path) -> None:
    single = tmp_path / "single.env"
    single.write_bytes(encode_env(VARS, SIZE))
    (tmp_path / "redundant").mkdir()
    newer = {**VARS, "boot_slot": "b"}
    *_, redundant_config = two_files(
        tmp_path / "redundant",
        encode_env(VARS, SIZE, redundant_flags=7),
        encode_env(newer, SIZE, redundant_flags=8),
    )

    assert fw_printenv(fw_config(tmp_path, (single, 0))) == VARS
    assert fw_printenv(redundant_config) == newer


def test_after_fw_setenv_the_newly_written_copy_wins(tmp_path: Path) -> None:
    copy = mkenvimage(tmp_path, VARS, SIZE, redundant=True)
    first, second, config = two_files(tmp_path, copy, copy)

    fw_setenv(config, "boot_slot", "b")
    after_one = read_copies(first, second)
    fw_setenv(config, "boot_slot", "a")
    after_two = read_copies(first, second)

    # Equal flags (1, 1): copy 0 is current, so fw_setenv writes copy 1 with 2.
    assert (after_one.copy_index, after_one.flags) == (1, 2)
    assert after_one.vars["boot_slot"] == "b"
    assert (after_two.copy_index, after_two.flags, after_two.valid_copies) == (0, 3, (0, 1))
    assert dict(after_two.vars) == fw_printenv(config) == VARS


def test_two_copies_at_offsets_in_one_file(tmp_path: Path) -> None:
    copy = mkenvimage(tmp_path, VARS, SIZE, redundant=True)
    image = tmp_path / "env.img"
    image.write_bytes(copy + copy)
    config = fw_config(tmp_path, (image, 0), (image, SIZE))

    fw_setenv(config, "upgrade_available", "0")
    env = parse_env(image.read_bytes(), copies=2, size=SIZE)

    assert image.stat().st_size == 2 * SIZE
    assert (env.copy_index, env.flags) == (1, 2)
    assert dict(env.vars) == fw_printenv(config) == {**VARS, "upgrade_available": "0"}


def test_stale_bytes_fw_setenv_leaves_after_the_end_are_ignored(tmp_path: Path) -> None:
    env_file = tmp_path / "uboot.env"
    env_file.write_bytes(mkenvimage(tmp_path, VARS, SIZE, fill=0))
    config = fw_config(tmp_path, (env_file, 0))

    # fw_setenv pads with its stale read buffer, where "zz_deleted=leaked=yes"
    # became "zz_deleted\0leaked=yes": a well-formed entry past the end.
    fw_setenv(config, "zz_deleted", "leaked=yes")
    fw_setenv(config, "zz_deleted")  # no value: delete
    blob = env_file.read_bytes()
    env = parse_env(blob)

    end = blob.index(b"\0\0", 4)
    assert b"\0leaked=yes\0" in blob[end:]
    assert "leaked" not in env.vars
    assert dict(env.vars) == fw_printenv(config) == VARS


def test_bad_crc_in_newer_copy_falls_back_to_older(tmp_path: Path) -> None:
    copy = mkenvimage(tmp_path, VARS, SIZE, redundant=True)
    first, second, config = two_files(tmp_path, copy, copy)
    fw_setenv(config, "boot_slot", "b")
    assert read_copies(first, second).copy_index == 1

    corrupted = bytearray(second.read_bytes())
    corrupted[10] ^= 0xFF
    second.write_bytes(corrupted)
    env = read_copies(first, second)

    assert (env.copy_index, env.flags, env.valid_copies) == (0, 1, (0,))
    assert env.vars["boot_slot"] == "a"
    assert fw_printenv(config)["boot_slot"] == "a"


def test_both_copies_corrupt_is_an_error_naming_the_file(tmp_path: Path) -> None:
    copy = bytearray(mkenvimage(tmp_path, VARS, SIZE, redundant=True))
    copy[0] ^= 0x01  # the stored CRC itself
    image = tmp_path / "broken.img"
    image.write_bytes(bytes(copy) * 2)
    config = fw_config(tmp_path, (image, 0), (image, SIZE))

    with pytest.raises(EnvCorrupt) as info:
        parse_env(image.read_bytes(), copies=2, source=str(image))

    message = str(info.value)
    assert str(image) in message
    assert "fix:" in message
    assert "\n" not in message
    assert isinstance(info.value, HarnessConfigError)
    printenv = subprocess.run([tool("fw_printenv"), "-c", str(config)], check=False)
    assert printenv.returncode != 0


def test_single_copy_with_bad_crc_is_an_error(tmp_path: Path) -> None:
    blob = bytearray(mkenvimage(tmp_path, VARS, SIZE))
    blob[-1] ^= 0xFF  # padding is covered by the CRC too

    with pytest.raises(EnvCorrupt, match=r"env\.bin"):
        parse_env(bytes(blob), source="env.bin")


@pytest.mark.parametrize(
    ("flags0", "flags1", "newer"),
    [(1, 2, 1), (2, 1, 0), (5, 5, 0), (254, 255, 1), (255, 0, 1), (0, 255, 0), (0, 1, 1)],
)
def test_copy_choice_by_flags_matches_libubootenv(
    tmp_path: Path, flags0: int, flags1: int, newer: int
) -> None:
    first, second, config = two_files(
        tmp_path,
        encode_env({"copy": "0"}, SIZE, redundant_flags=flags0),
        encode_env({"copy": "1"}, SIZE, redundant_flags=flags1),
    )

    env = read_copies(first, second)

    assert env.copy_index == newer
    assert env.vars["copy"] == fw_printenv(config)["copy"] == str(newer)


def test_fw_setenv_wraps_the_flag_from_255_to_0(tmp_path: Path) -> None:
    first, second, config = two_files(
        tmp_path,
        encode_env(VARS, SIZE, redundant_flags=254),
        encode_env(VARS, SIZE, redundant_flags=255),
    )

    fw_setenv(config, "boot_slot", "b")
    env = read_copies(first, second)

    assert first.read_bytes()[4] == 0  # libubootenv wrote 255 + 1 into copy 0
    assert (env.copy_index, env.flags) == (0, 0)
    assert env.vars["boot_slot"] == fw_printenv(config)["boot_slot"] == "b"


@pytest.mark.parametrize(("redundant", "fits"), [(False, 16), (True, 17)])
def test_size_limit_is_the_same_as_mkenvimage(tmp_path: Path, redundant: bool, fits: int) -> None:
    env = {"abcdefgh": "1"}  # 11 bytes + the closing NUL
    flags = 1 if redundant else None

    assert encode_env(env, fits, redundant_flags=flags) == mkenvimage(
        tmp_path, env, fits, redundant=redundant
    )
    with pytest.raises(ValueError, match=r"needs \d+ bytes"):
        encode_env(env, fits - 1, redundant_flags=flags)
    argv = [tool("mkenvimage"), "-s", str(fits - 1), "-o", str(tmp_path / "x"), "-"]
    if redundant:
        argv.insert(1, "-r")
    too_small = subprocess.run(argv, check=False, input=b"abcdefgh=1\n", capture_output=True)
    assert too_small.returncode != 0


@pytest.mark.parametrize(
    "env",
    [{"a=b": "c"}, {"": "x"}, {"nul\0key": "x"}, {"key": "nul\0value"}],
    ids=["equals-in-key", "empty-key", "nul-in-key", "nul-in-value"],
)
def test_encode_rejects_what_the_format_cannot_hold(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        encode_env(env, SIZE)


def test_bytes_that_are_not_utf8_round_trip(tmp_path: Path) -> None:
    raw = b"\xff\xfe-mac"
    value = raw.decode("utf-8", "surrogateescape")
    blob = encode_env({"serial": value}, SIZE)
    env_file = tmp_path / "uboot.env"
    env_file.write_bytes(blob)

    env = parse_env(blob)

    assert encode_env(env.vars, SIZE) == blob
    assert (
        fw_printenv(fw_config(tmp_path, (env_file, 0)))["serial"].encode("utf-8", "surrogateescape")
        == raw
    )


def test_blob_shorter_than_the_given_size_is_a_config_error() -> None:
    blob = encode_env(VARS, SIZE)

    with pytest.raises(HarnessConfigError, match=r"env\.bin.*too short"):
        parse_env(blob, size=SIZE, copies=2, source="env.bin")


def test_odd_length_without_size_cannot_be_split_into_two_copies() -> None:
    with pytest.raises(HarnessConfigError, match="equal"):
        parse_env(encode_env(VARS, SIZE, redundant_flags=1) + b"\0", copies=2)


def test_copies_in_separate_files_must_have_equal_size() -> None:
    small = encode_env(VARS, SIZE, redundant_flags=1)
    large = encode_env(VARS, 2 * SIZE, redundant_flags=2)

    with pytest.raises(HarnessConfigError, match="differ in size"):
        parse_env_copies([small, large], "a + b")
    assert parse_env_copies([small, large], "a + b", size=SIZE).valid_copies == (0,)


def test_vars_cannot_be_changed_after_parsing() -> None:
    source = dict(VARS)
    env = UBootEnv(source)
    source["boot_slot"] = "b"

    assert env.vars["boot_slot"] == "a"
    with pytest.raises(TypeError):
        env.vars["boot_slot"] = "b"  # type: ignore[index]
