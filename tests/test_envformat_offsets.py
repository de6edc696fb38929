"""U-Boot's env at raw offsets of a disk, read and written on the host, on the
stock image as built (its SD card holds both copies at 4 and 8 MiB)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from harness.bootloaders import UBootMenderEnv
from harness.cli import main
from harness.envformat import EnvCorrupt, encode_env, read_copies, read_env_at, save_env_at
from harness.errors import HarnessConfigError
from harness.images import ImageSet
from harness.images.diskimage import partitions
from harness.targets.target import load_target

pytestmark = pytest.mark.ab_target("qemu-arm64-uboot-stock")
OFFSETS = (0x400000, 0x800000)
SIZE = 0x4000


@pytest.fixture
def disk(ab_image: ImageSet, tmp_path: Path) -> Path:
    """A private copy of the stock image's SD card (the cache is never written)."""
    copy = tmp_path / "disk.img"
    shutil.copyfile(ab_image.file("disk"), copy)
    return copy


def partitions_digest(disk: Path) -> str:
    """The bytes of every partition and of the partition table: what an env write must not touch."""
    digest = hashlib.sha256()
    with disk.open("rb") as f:
        digest.update(f.read(512))
        for part in partitions(disk):
            f.seek(part.start_bytes)
            digest.update(f.read(part.size_bytes))
    return digest.hexdigest()


def test_the_image_ships_both_copies_of_the_default_env(ab_image: ImageSet, disk: Path) -> None:
    manifest = json.loads((ab_image.directory / "manifest.json").read_text())
    assert tuple(manifest["env"]["offsets"]) == OFFSETS and manifest["env"]["size"] == SIZE
    # Both copies written by `mkenvimage -r` (flags 1): equal flags, U-Boot takes the first.
    blobs = read_copies(disk, OFFSETS, SIZE)
    assert blobs[0] == blobs[1] and blobs[0][4] == 1

    env = read_env_at(disk, OFFSETS, SIZE)

    assert (env.copy_index, env.flags, env.valid_copies) == (0, 1, (0, 1))
    assert {k: env.vars[k] for k in manifest["env"]["initial"]} == manifest["env"]["initial"]
    # Mender's chain is in the env, and the canary is not: U-Boot's first boot saves it.
    for name in ("bootcmd", "altbootcmd", "mender_setup", "mender_altbootcmd"):
        assert name in env.vars
    assert "mender_saveenv_canary" not in env.vars
    # Every partition starts after both copies.
    assert min(p.start_bytes for p in partitions(disk)) >= OFFSETS[1] + SIZE


def test_a_save_writes_the_other_copy_with_the_next_flags_and_nothing_else(disk: Path) -> None:
    before = read_env_at(disk, OFFSETS, SIZE)
    untouched = partitions_digest(disk)

    written = save_env_at(disk, OFFSETS, SIZE, {**before.vars, "upgrade_available": "1"})

    assert written == (OFFSETS[1], 2)
    after = read_env_at(disk, OFFSETS, SIZE)
    assert (after.copy_index, after.flags, after.vars["upgrade_available"]) == (1, 2, "1")
    assert read_copies(disk, OFFSETS, SIZE)[1] == encode_env(
        {**before.vars, "upgrade_available": "1"}, SIZE, redundant_flags=2
    )
    assert partitions_digest(disk) == untouched
    # The next save goes back to the first copy.
    assert save_env_at(disk, OFFSETS, SIZE, after.vars) == (OFFSETS[0], 3)


def test_the_contract_module_reads_and_corrupts_the_copies_at_their_offsets(disk: Path) -> None:
    uboot = UBootMenderEnv(load_target("qemu-arm64-uboot-stock").env)
    save_env_at(disk, OFFSETS, SIZE, {**read_env_at(disk, OFFSETS, SIZE).vars, "bootcount": "7"})

    env = uboot.env_from_image(disk)
    assert (env.detail["copy"], env.detail["flags"], env.bootcount) == ("0x800000", "2", 7)

    proof = uboot.corrupt_env_copy(disk, "newest")

    assert proof == {
        "corrupted": ["0x800000"],
        "newest_before": "0x800000",
        "valid_after": ["0x400000"],
    }
    fallen_back = uboot.env_from_image(disk)
    assert (fallen_back.detail["copy"], fallen_back.bootcount) == ("0x400000", 0)
    uboot.corrupt_env_copy(disk, "all")
    with pytest.raises(EnvCorrupt, match="neither of the 2 copies"):
        uboot.env_from_image(disk)


def test_env_show_reads_raw_offsets_of_an_image(
    disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_env_at(disk, OFFSETS, SIZE, {**read_env_at(disk, OFFSETS, SIZE).vars, "bootcount": "3"})
    argv = ["env", "show", "--image", str(disk), "--offset", "0x400000", "--offset", "0x800000"]

    assert main([*argv, "--size", "0x4000"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "bootcount=3" in shown and shown == sorted(shown)

    assert main([*argv, "--size", "0x4000", "--copy", "1"]) == 0
    first = capsys.readouterr().out
    assert first.startswith(f"# copy 1 of 2 ({disk}@0x400000): flags 1, CRC32 ok")
    assert "bootcount=0" in first

    assert (
        main(["env", "show", "--image", str(disk), "--offset", "0x400000", "--size", "16384"]) == 1
    )
    assert (
        "no valid U-Boot environment" in capsys.readouterr().err
    )  # a redundant copy read as single


def test_env_show_offset_needs_a_size(disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["env", "show", "--image", str(disk), "--offset", "0x400000"])
    assert "--offset needs --size" in capsys.readouterr().err


def test_an_offset_past_the_end_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    small = tmp_path / "small.img"
    small.write_bytes(bytes(0x8000))
    with pytest.raises(HarnessConfigError) as info:
        read_env_at(small, (0x4000, 0x400000), SIZE)
    assert "does not fit" in str(info.value) and "CONFIG_ENV_OFFSET" in str(info.value)
