"""Reference images: find a recipe in qemu-images/, build it once, reuse it from the cache.

The harness does not know how an image is made (that is the recipe's job,
outside `harness/`); it only knows where recipes live, how to key the cache
and how to read the manifest a recipe leaves behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessConfigError, HarnessError
from harness.images import cache_manifest

log = logging.getLogger(__name__)

# Bump when the cache layout (not a recipe) changes.
CACHE_FORMAT = "2"  # 2: cache-manifest.json records every file


def default_recipes_dir() -> Path:
    """qemu-images/ beside the harness package (the repo layout), or $AB_RECIPES_DIR."""
    env = os.environ.get("AB_RECIPES_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "qemu-images"


def default_cache_dir() -> Path:
    """$AB_CACHE_DIR, else $XDG_CACHE_HOME/ab-harness, else ~/.cache/ab-harness."""
    env = os.environ.get("AB_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ab-harness"


@dataclass(frozen=True)
class Payload:
    """An update payload the recipe built: a raw rootfs image and its checksum."""

    name: str
    path: Path
    sha256: str
    version: str
    # The manifest describing the image this payload belongs to (client facts:
    # Mender's device type and artifact names); None: manifest.json beside it.
    manifest: Path | None = None

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True)
class ImageSet:
    """A built image in the cache, described by the recipe's manifest.json."""

    name: str
    directory: Path
    manifest: Mapping[str, Any]

    def file(self, key: str) -> Path:
        """Path of an output named in the manifest's "files" (e.g. "disk", "bios")."""
        files = self.manifest.get("files", {})
        if key not in files:
            raise HarnessConfigError(
                f"image '{self.name}' has no file '{key}' (it has: {', '.join(sorted(files))})",
                "fix the '@image:' reference in the target YAML",
            )
        return self.directory / str(files[key])

    @property
    def payloads(self) -> PayloadSet:
        """The image's update payloads by name; an unknown name lists the known ones."""
        return PayloadSet(
            self.name,
            {
                name: Payload(name, self.directory / p["file"], p["sha256"], p["version"])
                for name, p in self.manifest.get("payloads", {}).items()
            },
        )


class UnknownPayload(HarnessConfigError, KeyError):
    """A payload name the image does not have (a KeyError too, so `in`/`get` code keeps working)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return HarnessConfigError.__str__(self)


class PayloadSet(dict[str, Payload]):
    """A dict of payloads whose missing key is a one-line error naming the valid ones."""

    def __init__(self, image: str, payloads: Mapping[str, Payload]) -> None:
        super().__init__(payloads)
        self.image = image

    def __missing__(self, key: str) -> Payload:
        raise UnknownPayload(
            f"image '{self.image}' has no payload {key!r}",
            f"use one of: {', '.join(sorted(self))}",
        )


def recipe_dir(name: str, recipes: Path | None = None) -> Path:
    """Directory of the named recipe, or a one-line error listing those that exist."""
    root = recipes or default_recipes_dir()
    candidate = root / name
    if not (candidate / "recipe.py").is_file():
        known = sorted(p.parent.name for p in root.glob("*/recipe.py"))
        raise HarnessConfigError(
            f"no image recipe '{name}' in {root}",
            f"use one of: {', '.join(known) or '(none found)'}",
        )
    return candidate


def carried_client(name: str, recipes: Path | None = None) -> str | None:
    """The update client a recipe builds into its image itself (its `client`
    file, one word), or None: such an image needs no client flavour of it."""
    marker = (recipes or default_recipes_dir()) / name / "client"
    return marker.read_text().strip() or None if marker.is_file() else None


def _host_inputs(recipe: Path) -> list[Path]:
    listing = recipe / "host-inputs"
    if not listing.exists():
        return []
    return [
        Path(line.strip())
        for line in listing.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def cache_key(recipe: Path) -> str:
    """Hash of everything that decides the output: the recipe, the shared
    image kit, and the host files the recipe copies in (e.g. u-boot.bin)."""
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    sources = sorted(p for p in recipe.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    # A variant recipe (e.g. arm64-uboot-single-env) names the recipe it runs
    # in a `based-on` file: that recipe's files decide its output too.
    # One name a line: a variant of a variant names both (x86_64-grub-mender
    # runs x86_64-grub, which takes arm64-uboot's rootfs).
    based_on = recipe / "based-on"
    if based_on.is_file():
        for name in based_on.read_text().split():
            sources += sorted(
                p
                for p in (recipe.parent / name).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts
            )
    kit = recipe.parent / "imagekit"
    if kit.is_dir():
        sources += sorted(p for p in kit.rglob("*.py") if "__pycache__" not in p.parts)
    for path in sources:
        digest.update(str(path.relative_to(recipe.parent)).encode() + b"\0")
        digest.update(path.read_bytes())
    for host in _host_inputs(recipe):
        digest.update(str(host).encode() + b"\0")
        digest.update(host.read_bytes() if host.exists() else b"<missing>")
    return digest.hexdigest()[:16]


def entry_dir(name: str, *, cache: Path | None = None, recipes: Path | None = None) -> Path:
    """Where the recipe's output lives in the cache (built or not)."""
    recipe = recipe_dir(name, recipes)
    return (cache or default_cache_dir()) / "images" / f"{name}-{cache_key(recipe)}"


def cached_image(
    name: str, *, cache: Path | None = None, recipes: Path | None = None, verify: bool = True
) -> ImageSet | None:
    """The built image for the recipe as it is now, or None if not built yet.

    A built entry is checked quickly (`cache_manifest.verify`) unless
    `verify` is false; a bad one raises `CacheEntryBad`.
    """
    out = entry_dir(name, cache=cache, recipes=recipes)
    if not cache_manifest.is_complete(out):
        if (out / "manifest.json").is_file():
            # Built, but the harness never recorded it: not to be trusted.
            cache_manifest.verify(out, name)
        return None
    if verify:
        cache_manifest.verify(out, name)
    return _image_set(name, out)


def ensure_image(
    name: str,
    *,
    cache: Path | None = None,
    recipes: Path | None = None,
    progress: Callable[[str], None] | None = None,
    force: bool = False,
) -> ImageSet:
    """Build the recipe unless the cache already holds its output; return it.

    A complete entry is checked quickly and used without opening anything
    for writing (a read-only cache works).  Builds are serialised with a
    lock file so parallel test workers build once; `force` rebuilds a
    cached entry.  A failed build leaves nothing under the final cache path.
    """
    if not force:
        found = cached_image(name, cache=cache, recipes=recipes)
        if found is not None:
            return found
    recipe = recipe_dir(name, recipes)
    cache_root = cache or default_cache_dir()
    images = cache_root / "images"
    out = images / f"{name}-{cache_key(recipe)}"
    lock_path = images / f".{name}.lock"
    try:
        images.mkdir(parents=True, exist_ok=True)
        lock = lock_path.open("w")
    except OSError as err:
        raise HarnessConfigError(
            f"image '{name}' is not built in {cache_root} and the cache cannot be written "
            f"({lock_path}: {err.strerror})",
            "point --ab-cache (or AB_CACHE_DIR) at a writable directory, "
            f"or build it there first with 'ab-harness images build {name}'",
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Another worker may have built it while this one waited for the lock.
        if force or not cache_manifest.is_complete(out):
            _build(
                recipe, out, cache_root / "debs", progress or (lambda line: log.info("%s", line))
            )
    return _image_set(name, out)


def verify_image(
    name: str, *, cache: Path | None = None, recipes: Path | None = None
) -> tuple[ImageSet, cache_manifest.Verified]:
    """Hash every file of the built entry against its record (raises if bad or not built)."""
    out = entry_dir(name, cache=cache, recipes=recipes)
    if not out.is_dir():
        raise HarnessConfigError(
            f"image '{name}' is not built ({out} does not exist)",
            f"run 'ab-harness images build {name}'",
        )
    checked = cache_manifest.verify(out, name, full=True)
    return _image_set(name, out), checked


def _image_set(name: str, out: Path) -> ImageSet:
    path = out / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise cache_manifest.CacheEntryBad(
            f"image cache entry for '{name}' is bad: {path} cannot be read ({err})",
            f"run 'ab-harness images build {name} --force' to rebuild it",
        ) from None
    return ImageSet(name, out, manifest)


def _build(recipe: Path, out: Path, debs: Path, progress: Callable[[str], None]) -> None:
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    progress(f"building image '{recipe.name}' into {out}")
    cmd = [sys.executable, str(recipe / "recipe.py"), "--out", str(partial), "--debs", str(debs)]
    # Build tools print in whatever encoding they like; a stray byte must not end the build.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for raw in proc.stdout:
        line = raw.rstrip()
        progress(line)
        tail = [*tail[-4:], line]
    if proc.wait() != 0:
        shutil.rmtree(partial, ignore_errors=True)
        last = next((t for t in reversed(tail) if t.strip()), f"exit {proc.returncode}")
        raise HarnessError(
            f"image recipe '{recipe.name}' failed: {last.strip()}",
            f"run 'ab-harness images build {recipe.name}' to see the whole build log",
        )
    if not (partial / "manifest.json").is_file():
        shutil.rmtree(partial, ignore_errors=True)
        raise HarnessError(
            f"image recipe '{recipe.name}' exited 0 but wrote no manifest.json into its --out",
            f"fix {recipe / 'recipe.py'}: write manifest.json last, into --out",
        )
    cache_manifest.record(partial)
    # What has the final name is debris or (with --force) the old build; we hold the lock.
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    progress(f"image '{recipe.name}' ready: {out}")
