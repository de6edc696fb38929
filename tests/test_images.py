"""Image cache: a real (tiny) recipe script is built once, keyed by what decides its output."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest

from harness.errors import HarnessConfigError, HarnessError
from harness.images import (
    ImageSet,
    cache_key,
    cached_image,
    default_recipes_dir,
    ensure_image,
    recipe_dir,
)

# A recipe as the harness sees one: a script that takes --out and --debs,
# prints progress and leaves its outputs and a manifest.json in --out. It
# appends to a counter file outside the cache, so a test can count builds.
RECIPE = """\
import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

VERSION = "{version}"
COUNTER = Path({counter!r})

parser = argparse.ArgumentParser()
parser.add_argument("--out", type=Path, required=True)
parser.add_argument("--debs", type=Path, required=True)
args = parser.parse_args()
with COUNTER.open("a") as f:
    f.write(str(args.out) + "\\n")
print("[1/3] fetching packages into", args.debs.name, flush=True)
args.out.mkdir(parents=True)
time.sleep({delay})
print("[2/3] writing rootfs", VERSION, flush=True)
{noise}
{failure}
payload = ("rootfs " + VERSION + "\\n").encode() * 512
(args.out / "rootfs-v2.img").write_bytes(payload)
(args.out / "disk.img").write_bytes(b"\\x00" * 4096)
manifest = {{
    "files": {{"disk": "disk.img"}},
    "payloads": {{
        "good": {{
            "file": "rootfs-v2.img",
            "sha256": hashlib.sha256(payload).hexdigest(),
            "version": VERSION,
        }}
    }},
}}
{manifest_write}
print("[3/3] done", flush=True)
"""

FAIL = 'print("error: boom", file=sys.stderr, flush=True)\nsys.exit(1)'
WRITE_MANIFEST = '(args.out / "manifest.json").write_text(json.dumps(manifest))'


class Tree:
    """A recipes/ tree with one recipe, a cache and a build counter, all under tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.recipes = tmp_path / "recipes"
        self.cache = tmp_path / "cache"
        self.counter = tmp_path / "builds.txt"
        self.recipe = self.recipes / "tiny"
        self.recipe.mkdir(parents=True)
        self.write()

    def write(
        self,
        version: str = "2.0",
        *,
        fail: bool = False,
        manifest: bool = True,
        delay: float = 0.0,
        noise: bytes = b"",
    ) -> None:
        (self.recipe / "recipe.py").write_text(
            RECIPE.format(
                version=version,
                counter=str(self.counter),
                delay=delay,
                noise=f"sys.stdout.buffer.write({noise!r}); sys.stdout.flush()" if noise else "",
                failure=FAIL if fail else "",
                manifest_write=WRITE_MANIFEST if manifest else "",
            )
        )

    @property
    def builds(self) -> list[str]:
        return self.counter.read_text().splitlines() if self.counter.exists() else []

    def ensure(self, progress: list[str] | None = None) -> ImageSet:
        sink = progress if progress is not None else []
        return ensure_image("tiny", cache=self.cache, recipes=self.recipes, progress=sink.append)

    def key(self) -> str:
        return cache_key(self.recipe)

    def leftovers(self) -> list[str]:
        images = self.cache / "images"
        return sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def test_first_call_builds_and_reads_the_manifest(tree: Tree) -> None:
    lines: list[str] = []

    image = tree.ensure(lines)

    assert image.name == "tiny"
    assert image.directory == tree.cache / "images" / f"tiny-{tree.key()}"
    assert lines[0] == f"building image 'tiny' into {image.directory}"
    assert lines[1:4] == [
        "[1/3] fetching packages into debs",
        "[2/3] writing rootfs 2.0",
        "[3/3] done",
    ]
    assert lines[-1] == f"image 'tiny' ready: {image.directory}"
    assert tree.builds == [f"{image.directory}.partial"]
    assert image.file("disk") == image.directory / "disk.img"
    assert image.file("disk").stat().st_size == 4096

    payload = image.payloads["good"]
    assert payload.path == image.directory / "rootfs-v2.img"
    assert payload.version == "2.0"
    assert payload.size == len(b"rootfs 2.0\n") * 512
    assert hashlib.sha256(payload.path.read_bytes()).hexdigest() == payload.sha256
    assert not (image.directory.parent / f"{image.directory.name}.partial").exists()


def test_second_call_reuses_the_cache(tree: Tree) -> None:
    first = tree.ensure()
    lines: list[str] = []

    second = tree.ensure(lines)

    assert len(tree.builds) == 1
    assert lines == []
    assert second == first


def test_cached_image_is_none_until_built(tree: Tree) -> None:
    assert cached_image("tiny", cache=tree.cache, recipes=tree.recipes) is None
    assert tree.builds == []

    built = tree.ensure()

    assert cached_image("tiny", cache=tree.cache, recipes=tree.recipes) == built


def test_changing_the_recipe_changes_the_key_and_rebuilds(tree: Tree) -> None:
    old_key = tree.key()
    old = tree.ensure()

    tree.write(version="3.0")
    new = tree.ensure()

    assert tree.key() != old_key
    assert new.directory != old.directory
    assert new.directory.name == f"tiny-{tree.key()}"
    assert new.payloads["good"].version == "3.0"
    assert len(tree.builds) == 2
    # The old build stays where it was; nothing was built into it again.
    assert old.payloads["good"].path.read_bytes().startswith(b"rootfs 2.0")
    assert cached_image("tiny", cache=tree.cache, recipes=tree.recipes) == new


def test_cache_key_is_stable_and_ignores_pycache(tree: Tree) -> None:
    key = tree.key()
    pycache = tree.recipe / "__pycache__"
    pycache.mkdir()
    (pycache / "recipe.cpython-311.pyc").write_bytes(b"\x00compiled")

    assert tree.key() == key
    assert cache_key(tree.recipe) == key


def test_cache_key_covers_every_recipe_file(tree: Tree) -> None:
    key = tree.key()

    (tree.recipe / "rootfs").mkdir()
    (tree.recipe / "rootfs" / "motd").write_text("hello\n")

    assert tree.key() != key


def test_cache_key_covers_the_shared_imagekit(tree: Tree) -> None:
    key = tree.key()
    kit = tree.recipes / "imagekit"
    kit.mkdir()
    (kit / "run.py").write_text("def run(): pass\n")
    with_kit = tree.key()

    (kit / "run.py").write_text("def run(): return 1\n")

    assert with_kit != key
    assert tree.key() != with_kit


def test_host_inputs_make_the_key_depend_on_host_files(tmp_path: Path, tree: Tree) -> None:
    host_file = tmp_path / "host" / "u-boot.bin"
    host_file.parent.mkdir()
    host_file.write_bytes(b"U-Boot 2023.01")
    (tree.recipe / "host-inputs").write_text(f"# copied into the image\n\n{host_file}\n")
    key = tree.key()

    host_file.write_bytes(b"U-Boot 2024.04")
    changed = tree.key()
    host_file.write_bytes(b"U-Boot 2023.01")
    restored = tree.key()
    host_file.unlink()
    missing = tree.key()

    assert changed != key
    assert restored == key
    assert missing not in (key, changed)


def test_failing_recipe_raises_and_leaves_nothing(tree: Tree) -> None:
    tree.write(fail=True)
    lines: list[str] = []

    with pytest.raises(HarnessError) as info:
        tree.ensure(lines)

    message = str(info.value)
    assert "\n" not in message
    assert "image recipe 'tiny' failed: error: boom" in message
    assert "error: boom" in lines
    assert len(tree.builds) == 1  # it did run, and got as far as creating its out dir
    assert tree.leftovers() == []
    assert cached_image("tiny", cache=tree.cache, recipes=tree.recipes) is None


def test_recipe_that_writes_no_manifest_is_a_failed_build(tree: Tree) -> None:
    tree.write(manifest=False)

    with pytest.raises(HarnessError) as info:
        tree.ensure()

    message = str(info.value)
    assert "\n" not in message
    assert "image recipe 'tiny'" in message
    assert "manifest.json" in message
    assert tree.leftovers() == []

    # Fixing the recipe then builds normally (no stale directory in the way).
    tree.write()
    assert tree.ensure().payloads["good"].version == "2.0"


def test_output_that_is_not_utf8_does_not_break_the_build(tree: Tree) -> None:
    # mkfs and friends print in the locale's encoding; Latin-1 bytes are not UTF-8.
    tree.write(noise=b"mkfs.vfat: \xe9tiquette\n")
    lines: list[str] = []

    image = tree.ensure(lines)

    assert "mkfs.vfat: \ufffdtiquette" in lines
    assert image.payloads["good"].version == "2.0"
    assert tree.leftovers() == [image.directory.name]


def test_stale_directory_without_manifest_is_replaced(tree: Tree) -> None:
    stale = tree.cache / "images" / f"tiny-{tree.key()}"
    stale.mkdir(parents=True)
    (stale / "disk.img").write_bytes(b"half-written by a killed build")

    image = tree.ensure()

    assert image.directory == stale
    assert image.file("disk").read_bytes() == b"\x00" * 4096
    assert len(tree.builds) == 1


def test_a_failed_build_is_retried_next_time(tree: Tree) -> None:
    tree.write(fail=True)
    with pytest.raises(HarnessError):
        tree.ensure()
    tree.write(version="2.1")

    image = tree.ensure()

    assert image.payloads["good"].version == "2.1"
    assert tree.leftovers() == [image.directory.name]


def test_concurrent_callers_build_once(tree: Tree) -> None:
    tree.write(delay=0.3)
    results: list[ImageSet] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(ensure_image("tiny", cache=tree.cache, recipes=tree.recipes))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(results) == 3
    assert len({r.directory for r in results}) == 1
    assert len(tree.builds) == 1


def test_unknown_recipe_lists_the_known_ones(tree: Tree) -> None:
    (tree.recipes / "other").mkdir()
    (tree.recipes / "other" / "recipe.py").write_text("")
    (tree.recipes / "imagekit").mkdir()  # a helper package, not a recipe

    with pytest.raises(HarnessConfigError) as info:
        ensure_image("huge", cache=tree.cache, recipes=tree.recipes)

    message = str(info.value)
    assert "\n" not in message
    assert f"no image recipe 'huge' in {tree.recipes}" in message
    assert "use one of: other, tiny" in message
    assert not tree.cache.exists()


def test_image_file_with_an_unknown_key_is_a_config_error(tree: Tree) -> None:
    image = tree.ensure()

    with pytest.raises(HarnessConfigError) as info:
        image.file("kernel")

    message = str(info.value)
    assert "\n" not in message
    assert "image 'tiny' has no file 'kernel' (it has: disk)" in message


def test_reference_recipe_key_is_stable_and_location_independent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AB_RECIPES_DIR", raising=False)
    real = recipe_dir("arm64-uboot")
    assert real == default_recipes_dir() / "arm64-uboot"
    key = cache_key(real)
    assert cache_key(real) == key

    copy = tmp_path / "qemu-images"
    shutil.copytree(real.parent, copy, ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
    assert cache_key(copy / "arm64-uboot") == key

    for package in (copy / "arm64-uboot", copy / "imagekit"):
        (package / "__pycache__").mkdir(exist_ok=True)
        (package / "__pycache__" / "junk.cpython-311.pyc").write_bytes(b"\x00\x01")
    assert cache_key(copy / "arm64-uboot") == key
