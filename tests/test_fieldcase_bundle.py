"""Bundles are plain files that load back whole; a broken one is one line naming
the file and the fix. The host-side pieces of a replay work on real file
systems: client state into ext4 with debugfs, payloads found by sha256 or version."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from harness.fieldcase import hostfs
from harness.fieldcase.bundle import (
    Bundle,
    BundleError,
    Partition,
    SlotState,
    StateFile,
    load,
    write_manifest,
    write_raw,
)
from harness.fieldcase.ext4 import fs_bytes
from harness.fieldcase.store import PayloadStore, StoredPayload

ROOT = Path(__file__).resolve().parent.parent


def make_bundle(folder: Path) -> Bundle:
    folder.mkdir()
    env = (
        write_raw(folder, "env/uboot.env", b"\x01" * 64, "uboot.env", "/uboot/uboot.env"),
        write_raw(folder, "env/uboot-redund.env", b"\x02" * 64, "uboot-redund.env", "/u/r"),
    )
    state = write_raw(folder, "client/data/x", b"B\n", "/data/x", "/data/x")
    bundle = Bundle(
        path=folder,
        target="qemu-arm64-uboot",
        bootloader="uboot",
        via="console",
        captured_at="2026-11-28T12:00:00Z",
        env_partition=1,
        env_size=64,
        env_files=env,
        env_device={"upgrade_available": "1", "bootcount": "1"},
        disk="/dev/vda",
        partitions=(Partition(1, "vda1", 2048, 32768), Partition(2, "vda2", 34816, 81920)),
        running_slot="B",
        cmdline="root=/dev/vda3",
        slots={"A": SlotState(2, "/dev/vda2", 10, "ab" * 32, "1", False)},
        client="ab-update",
        client_status_exit=0,
        client_state=(
            StateFile("/data/x", 4, "ext4", "x", True, state.file, state.sha256),
            StateFile("/data/gone", 4, "ext4", "gone", False),
        ),
    )
    write_manifest(bundle)
    return bundle


def test_a_bundle_is_plain_files_that_load_back_whole(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b")

    assert load(bundle.path) == bundle
    assert (bundle.path / "env.txt").read_text() == "bootcount=1\nupgrade_available=1\n"
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    assert manifest["env"]["files"][0]["file"] == "env/uboot.env"
    assert load(bundle.path).env_bytes()["uboot-redund.env"] == b"\x02" * 64


def _edit_manifest(path: Path, change: object) -> None:
    data = json.loads((path / "manifest.json").read_text())
    change(data)  # type: ignore[operator]
    (path / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("breakage", "names", "fix"),
    [
        (shutil.rmtree, "no such bundle folder", "capture"),
        (lambda p: (p / "manifest.json").unlink(), "has no manifest.json", "capture"),
        (lambda p: (p / "manifest.json").write_text("{"), "manifest.json: not valid JSON", ""),
        (lambda p: (p / "env" / "uboot.env").write_bytes(b"x"), "env/uboot.env: its bytes", ""),
        (lambda p: (p / "env" / "uboot.env").unlink(), "env/uboot.env: missing", "whole"),
        (lambda p: (p / "client/data/x").write_bytes(b"A\n"), "client/data/x: its bytes", ""),
        (lambda p: (p / "env.txt").unlink(), "env.txt: missing", ""),
        (
            lambda p: _edit_manifest(p, lambda d: d.pop("slots")),
            "manifest.json: no 'slots'",
            "restore",
        ),
        (
            lambda p: _edit_manifest(p, lambda d: d.update(format="other/9")),
            "format is 'other/9'",
            "",
        ),
        (
            lambda p: _edit_manifest(p, lambda d: d["slots"]["A"].pop("sha256")),
            "'slots.A' lacks sha256",
            "",
        ),
    ],
)
def test_a_broken_bundle_is_one_line_naming_the_file_and_the_fix(
    tmp_path: Path, breakage: object, names: str, fix: str
) -> None:
    bundle = make_bundle(tmp_path / "b")
    breakage(bundle.path)  # type: ignore[operator]

    with pytest.raises(BundleError) as caught:
        load(bundle.path)

    message = str(caught.value)
    assert "\n" not in message and names in message, message
    assert "— fix: " in message and fix in message.split("— fix: ")[1]


def test_the_committed_example_bundle_loads() -> None:
    bundle = load(ROOT / "scenarios" / "bundles" / "lost-install-record")
    assert (bundle.env_device["upgrade_available"], bundle.running_slot) == ("1", "B")


def test_the_guide_shows_the_scenario_that_starts_from_a_bundle_as_it_is() -> None:
    guide = (ROOT / "docs" / "guide" / "field-replay.md").read_text()
    included = re.search(r"^```\{literalinclude\} (\S+)$", guide, re.MULTILINE)
    assert included is not None, "the field replay guide does not include the scenario file"
    shown = (ROOT / "docs" / "guide" / included.group(1)).resolve()
    assert shown == (ROOT / "scenarios" / "test_field_case.py").resolve()


def _disk_with_ext4(tmp_path: Path, tree: Path | None = None) -> Path:
    disk = tmp_path / "disk.img"
    with disk.open("wb") as f:
        f.truncate(12 << 20)
    subprocess.run(
        ["sfdisk", "-q", str(disk)], input=b"2048,20480,83\n", check=True, capture_output=True
    )
    args = ["-d", str(tree)] if tree else []
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-E", f"offset={2048 * 512}", *args, str(disk), "10M"],
        check=True,
        capture_output=True,
    )
    return disk


def test_client_state_is_restored_into_ext4_and_its_absence_too(tmp_path: Path) -> None:
    disk = _disk_with_ext4(tmp_path)

    hostfs.write_file(disk, 1, "ext4", "ab-update/installed", b"B\n")
    assert hostfs.read_file(disk, 1, "ext4", "ab-update/installed") == b"B\n"
    hostfs.write_file(disk, 1, "ext4", "ab-update/installed", b"A\n")  # replaced
    assert hostfs.read_file(disk, 1, "ext4", "ab-update/installed") == b"A\n"
    hostfs.remove_file(disk, 1, "ext4", "ab-update/installed")
    assert hostfs.read_file(disk, 1, "ext4", "ab-update/installed") is None
    hostfs.remove_file(disk, 1, "ext4", "ab-update/installed")  # absent already: fine


def test_payloads_are_found_by_sha256_then_by_version(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "version").write_text("7\n")
    image = tmp_path / "images" / "rootfs-7.img"
    image.parent.mkdir()
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "4M"],
        check=True,
        capture_output=True,
    )
    data = image.read_bytes()
    assert fs_bytes(data[1024:2048]) == len(data) == 4 << 20
    store = PayloadStore([StoredPayload("v1", "1", "00" * 32, 10, image)])
    store.add_folder(image.parent)
    digest = hashlib.sha256(data).hexdigest()

    exact = store.find(SlotState(2, "/dev/vda2", len(data), digest, "7", False))
    by_version = store.find(SlotState(2, "/dev/vda2", len(data), "ff" * 32, "7", False))
    assert exact is not None and (exact.payload.name, exact.how) == ("rootfs-7.img", "sha256")
    assert by_version is not None and by_version.how == "version"
    assert by_version.payload.version == "7"
    assert store.find(SlotState(2, "/dev/vda2", len(data), "ff" * 32, "8", False)) is None


def test_a_bundle_is_rebuilt_on_the_reference_disk_byte_for_byte(tmp_path: Path) -> None:
    """No boot: the rebuilt disk holds the bundle's env bytes, v2 in B, and no install record."""
    from harness.bootloaders import bootloader_for
    from harness.fieldcase.rebuild import BundleMismatch, rebuild
    from harness.images import ensure_image
    from harness.images.diskimage import partition_sha256, read_partition_files
    from harness.targets.target import load_target

    bundle = load(ROOT / "scenarios" / "bundles" / "lost-install-record")
    spec = load_target("qemu-arm64-uboot")
    image = ensure_image("arm64-uboot")
    bootloader = bootloader_for(spec.bootloader, spec.env)
    store = PayloadStore.of_image(image, spec.slots["A"])

    disk = rebuild(bundle, spec, image, bootloader, store, tmp_path / "disk.img")

    env = read_partition_files(disk.path, 1, spec.env.files)
    assert env == [bundle.env_bytes()[name] for name in spec.env.files]
    assert (disk.env.boot_part, disk.env.upgrade_available, disk.env.bootcount) == (3, True, 1)
    v2 = image.payloads["v2"]
    assert partition_sha256(disk.path, 3, v2.size) == v2.sha256
    assert hostfs.read_file(disk.path, 4, "ext4", "ab-update/installed") is None
    assert disk.slots_from["A"].startswith("v1 ")

    # A bundle whose client kept a record: the replay disk carries it, byte for byte.
    copy = tmp_path / "with-record"
    shutil.copytree(bundle.path, copy)
    raw = write_raw(
        copy, "client/data/ab-update/installed", b"B\n", "/data/ab-update/installed", ""
    )
    record = StateFile(raw.name, 4, "ext4", "ab-update/installed", True, raw.file, raw.sha256)
    write_manifest(replace(bundle, path=copy, client_state=(record,)))
    kept = rebuild(load(copy), spec, image, bootloader, store, tmp_path / "kept.img")
    assert hostfs.read_file(kept.path, 4, "ext4", "ab-update/installed") == b"B\n"

    grub = load_target("qemu-x86_64-grub")
    with pytest.raises(BundleMismatch, match="captured from a 'uboot' device"):
        rebuild(bundle, grub, image, bootloader, store, tmp_path / "other.img")


def test_differences_name_each_field_and_skip_what_a_board_cannot_see() -> None:
    from harness.fieldcase import NextBoot, differences

    rollback = NextBoot("A", 2, False, "rollback", (("uboot.env", 5),), True, "A", "1", None)
    on_a_board = replace(rollback, transition=None)
    stayed = replace(rollback, slot="B", upgrade_available=True)

    assert differences([rollback], [rollback]) == []
    assert differences([on_a_board], [rollback]) == []
    assert differences([rollback], [stayed]) == [
        "boot 1: slot was 'A' on the device, 'B' in the replay",
        "boot 1: upgrade_available was False on the device, True in the replay",
    ]
    assert differences([rollback], []) == ["the original made 1 boots, the replay 0"]
