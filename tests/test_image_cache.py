"""The image cache checks what it holds: every way of damaging an entry is named,
`images build --force` heals it, and a complete entry is used without writing."""

from __future__ import annotations

import builtins
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.errors import HarnessConfigError, HarnessError
from harness.images import ImageSet, cache_manifest, ensure_image, verify_image

# A recipe with a disk larger than cache_manifest.SMALL_FILE (so only its head is
# hashed at use), a boot signature, a payload and a small firmware file.
RECIPE = """\
import argparse, json
from pathlib import Path
parser = argparse.ArgumentParser()
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--debs", type=Path, required=True)
args = parser.parse_args()
args.out.mkdir(parents=True)
disk = bytearray(bytes(range(256)) * (3 << 12))
disk[510:512] = b"\\x55\\xaa"
(args.out / "disk.img").write_bytes(bytes(disk))
(args.out / "rootfs-v2.img").write_bytes(b"rootfs v2\\n" * 200_000)
(args.out / "u-boot.bin").write_bytes(b"U-Boot" * 700)
(args.out / "manifest.json").write_text(json.dumps({"files": {"disk": "disk.img"}}))
"""
FORCE = "ab-harness images build tiny --force"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    recipes = tmp_path / "recipes"
    (recipes / "tiny").mkdir(parents=True)
    (recipes / "tiny" / "recipe.py").write_text(RECIPE)
    monkeypatch.setenv("AB_RECIPES_DIR", str(recipes))
    return tmp_path / "cache"


def build(cache: Path, force: bool = False) -> ImageSet:
    return ensure_image("tiny", cache=cache, progress=lambda _: None, force=force)


def keep_mtime(path: Path, change: Callable[[Path], None]) -> None:
    """Change a file and put its mtime back, as a careless copy tool might."""
    before = path.stat()
    change(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def flip_byte(offset: int) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        with path.open("r+b") as f:
            f.seek(offset)
            old = f.read(1)
            f.seek(offset)
            f.write(bytes([old[0] ^ 0xFF]))

    return change


def zero_boot_sector(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(bytes(512))


def assert_names(err: HarnessError, path: Path, problem: str) -> None:
    message = str(err)
    assert "\n" not in message
    assert str(path) in message
    assert problem in message
    assert FORCE in message


def test_build_records_size_and_sha256_of_every_output(cache: Path) -> None:
    image = build(cache)

    data = json.loads((image.directory / cache_manifest.NAME).read_text())
    assert sorted(data["files"]) == ["disk.img", "manifest.json", "rootfs-v2.img", "u-boot.bin"]
    disk = data["files"]["disk.img"]
    assert disk["size"] == (image.directory / "disk.img").stat().st_size > cache_manifest.SMALL_FILE
    assert len(disk["sha256"]) == 64


DAMAGE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "empty": ("disk.img", lambda p: p.write_bytes(b""), "is 0 bytes, built as"),
    "truncated": ("disk.img", lambda p: os.truncate(p, 4096), "is 4096 bytes, built as"),
    "zeroed boot sector, mtime kept": (
        "disk.img",
        lambda p: keep_mtime(p, zero_boot_sector),
        "differs in its first 64 KiB",
    ),
    "payload corrupted": ("rootfs-v2.img", flip_byte(1_000_000), "sha256 recorded at build"),
    "small file corrupted, mtime kept": (
        "u-boot.bin",
        lambda p: keep_mtime(p, flip_byte(100)),
        "sha256 recorded at build",
    ),
    "manifest missing": ("manifest.json", Path.unlink, "is missing"),
    "cache manifest missing": (cache_manifest.NAME, Path.unlink, "is missing"),
    "cache manifest garbage": (cache_manifest.NAME, lambda p: p.write_text("{"), "unreadable"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_entry_is_named_at_use_and_force_rebuilds_it(cache: Path, case: str) -> None:
    file, damage, problem = DAMAGE[case]
    image = build(cache)
    damage(image.directory / file)

    with pytest.raises(cache_manifest.CacheEntryBad) as info:
        build(cache)
    assert_names(info.value, image.directory / file, problem)

    healed = build(cache, force=True)
    assert healed.directory == image.directory
    verify_image("tiny", cache=cache)  # a full check passes again
    assert build(cache) == healed


def test_corruption_with_mtime_kept_is_caught_by_the_full_check(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = build(cache)
    payload = image.directory / "rootfs-v2.img"
    keep_mtime(payload, flip_byte(1_000_000))

    # The quick check at use reads only the head of a large file whose mtime
    # did not move: it cannot see this, which is what `images verify` is for.
    assert build(cache) == image
    assert main(["images", "verify", "tiny", "--cache", str(cache)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert str(payload) in err and FORCE in err

    assert main(["images", "build", "tiny", "--force", "--cache", str(cache)]) == 0
    assert main(["images", "verify", "--cache", str(cache)]) == 0
    out, _ = capsys.readouterr()
    assert "image 'tiny' ok: 4 files" in out


def test_images_build_on_a_bad_entry_says_force(
    cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = build(cache)
    (image.directory / "disk.img").write_bytes(b"")

    assert main(["images", "build", "tiny", "--cache", str(cache)]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("ab-harness: error: image cache entry for 'tiny' is bad: ")
    assert err.count("\n") == 1 and FORCE in err


def test_quick_check_reads_little(cache: Path) -> None:
    image = build(cache)

    checked = cache_manifest.verify(image.directory, "tiny")

    disk = (image.directory / "disk.img").stat().st_size
    payload = (image.directory / "rootfs-v2.img").stat().st_size
    assert checked.files == 4
    assert checked.bytes_hashed < disk + payload
    assert checked.bytes_hashed <= 2 * cache_manifest.HEAD + 2 * cache_manifest.SMALL_FILE


def test_complete_entry_is_used_without_writing_anything(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = build(cache)
    images_dir = image.directory.parent
    # As root, chmod does not stop writes: make the lock un-creatable instead,
    # and watch every open and mkdir for anything that would write.
    (images_dir / ".tiny.lock").unlink()
    (images_dir / ".tiny.lock").mkdir()
    writes: list[str] = []
    real_open = builtins.open

    def spy_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+"):
            writes.append(f"open({file}, {mode})")
        return real_open(file, mode, *args, **kwargs)

    def no_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        writes.append(f"mkdir({path})")
        raise PermissionError(30, "Read-only file system", str(path))

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_open)
    monkeypatch.setattr(os, "mkdir", no_mkdir)

    assert build(cache) == image
    assert writes == []


def test_unbuilt_image_in_an_unwritable_cache_is_one_line(cache: Path) -> None:
    images_dir = cache / "images"
    images_dir.mkdir(parents=True)
    (images_dir / ".tiny.lock").mkdir()

    with pytest.raises(HarnessConfigError) as info:
        build(cache)

    message = str(info.value)
    assert "\n" not in message
    assert "image 'tiny' is not built" in message
    assert "writable" in message
