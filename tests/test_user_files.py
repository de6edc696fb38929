"""The user's own files by path (harness.images.userfiles, harness.images.userreleases): a
test boots a private copy of the disk and never writes the user's file; the
releases the YAML names become payloads, a missing bad one is derived, and
one that cannot be derived skips with the reason."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from test_releases import good  # noqa: F401  (a fixture: a small ext4 release)

from harness.errors import HarnessConfigError
from harness.images import UnknownPayload
from harness.images.userfiles import private_copy
from harness.images.userreleases import Release, parse_device, parse_releases, release_payloads
from harness.targets.target import default_targets_dir, load_target, materialize


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_path_target(tmp_path: Path, disk: Path, **ab: Any) -> Path:
    data = yaml.safe_load((default_targets_dir() / "qemu-arm64-uboot-stock.yaml").read_text())
    data["images"] = {"uboot": str(tmp_path / "u-boot.bin"), "disk": disk.name}
    del data["ab-harness"]["image"]
    data["ab-harness"].update(ab)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_disk_named_by_path_is_booted_from_a_private_copy(tmp_path: Path) -> None:
    disk = tmp_path / "my-device.sdimg"
    disk.write_bytes(bytes(range(256)) * 4096)
    before = digest(disk)
    spec = load_target(str(by_path_target(tmp_path, disk)))

    made = materialize(spec, tmp_path / "test-1", None)

    assert made.disk is not None and made.disk != disk
    assert made.disk.parent == tmp_path / "test-1"
    assert made.disk.read_bytes() == disk.read_bytes()
    written = yaml.safe_load(made.labgrid_config.read_text())
    assert written["images"]["disk"] == str(made.disk)
    # Read-only files (U-Boot as -bios) are used where they are.
    assert written["images"]["uboot"] == str(tmp_path / "u-boot.bin")
    with made.disk.open("r+b") as f:
        f.write(b"U-Boot saved its env here")
    assert digest(disk) == before


def test_a_qcow2_disk_becomes_a_raw_copy_the_host_readers_can_read(tmp_path: Path) -> None:
    raw = tmp_path / "disk.img"
    raw.write_bytes(b"\xab" * (1 << 20))
    qcow2 = tmp_path / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True
    )
    before = digest(qcow2)

    copy = private_copy(qcow2, tmp_path / "work")

    assert copy.suffix == ".raw" and copy.read_bytes() == raw.read_bytes()
    assert digest(qcow2) == before


def test_a_missing_disk_is_named(tmp_path: Path) -> None:
    with pytest.raises(HarnessConfigError, match="does not exist"):
        private_copy(tmp_path / "gone.sdimg", tmp_path / "work")


def test_releases_and_device_are_validated(tmp_path: Path) -> None:
    yaml_path = tmp_path / "t.yaml"
    releases = parse_releases({"v2": {"path": "v2.ext4", "version": 2}}, yaml_path)
    assert releases == {"v2": Release("v2", tmp_path / "v2.ext4", "2")}
    with pytest.raises(HarnessConfigError, match=r"releases\.v2\.size"):
        parse_releases({"v2": {"path": "x", "version": "2", "size": 1}}, yaml_path)
    with pytest.raises(HarnessConfigError, match=r"missing key 'ab-harness\.releases\.v2\.path'"):
        parse_releases({"v2": {"version": "2"}}, yaml_path)
    device = parse_device({"type": "my-board", "health_dir": None}, yaml_path)
    assert (device.type, device.conventions.health_dir) == ("my-board", None)
    with pytest.raises(HarnessConfigError, match=r"device\.colour"):
        parse_device({"colour": "red"}, yaml_path)


def test_a_target_yaml_with_releases_loads(tmp_path: Path) -> None:
    disk = tmp_path / "d.img"
    disk.write_bytes(b"")
    spec = load_target(
        str(
            by_path_target(
                tmp_path,
                disk,
                releases={"v2": {"path": "rootfs.ext4", "version": "2"}},
                device={"type": "my-board"},
            )
        )
    )
    assert spec.image is None
    assert spec.releases["v2"].path == tmp_path / "rootfs.ext4"
    assert spec.device.type == "my-board"


class Skipped(Exception):
    pass


def _skip(reason: str) -> NoReturn:
    raise Skipped(reason)


def test_given_releases_are_payloads_and_bad_ones_are_derived(
    good: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    before = digest(good)
    device = parse_device({"type": "my-board"}, tmp_path / "t.yaml")
    payloads = release_payloads(
        "mine", {"v2": Release("v2", good, "7")}, device, "stock", tmp_path / "cache", _skip
    )

    assert payloads["v2"].path == good and payloads["v2"].sha256 == before
    assert payloads["v2"].version == "7"
    bad = payloads["v2-bad"]
    assert bad.version == "7-bad" and bad.path.is_relative_to(tmp_path / "cache")
    assert bad.manifest is not None and "my-board" in bad.manifest.read_text()
    assert digest(good) == before
    with pytest.raises(UnknownPayload, match="v2-colour"):
        payloads["v2-colour"]


def test_an_impossible_derivation_skips_with_its_reason(tmp_path: Path) -> None:
    not_ext = tmp_path / "rootfs.squashfs"
    not_ext.write_bytes(b"hsqs" + bytes(4096))
    payloads = release_payloads(
        "mine",
        {"v2": Release("v2", not_ext, "2")},
        parse_device({}, tmp_path / "t.yaml"),
        "stock",
        tmp_path / "cache",
        _skip,
    )
    with pytest.raises(Skipped, match=r"v2-hang cannot be derived from v2: .*not an ext2/3/4"):
        payloads["v2-hang"]
