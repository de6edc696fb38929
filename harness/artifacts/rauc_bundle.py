"""Read a RAUC bundle (plain or verity) and check it against its manifest.

A bundle, as `rauc bundle` writes it, is a squashfs image, then a CMS
signature (DER), then the signature's size as a big-endian 64-bit number.
In the plain format the signature is detached over the squashfs, which
holds `manifest.raucm` beside the images; in the verity format the manifest
is inside the signature and the squashfs is followed by its dm-verity hash
tree (`verity-size` bytes). The manifest is an ini file: `[update]
compatible/version`, `[bundle] format`, one `[image.<slotclass>]` per image
with `filename`, `sha256`, `size`. Every image is hashed out of the
squashfs (unsquashfs -cat) and compared with the manifest: a bundle whose
images differ from what it signed must never read as a good one.
"""

from __future__ import annotations

import configparser
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.artifacts import cms
from harness.artifacts.bundle import REBUILD, Bundle, BundleError, BundleImage
from harness.artifacts.model import Signature
from harness.errors import EnvironmentMissing

SQUASHFS_MAGIC = b"hsqs"
_SIZE_BYTES = 8
_TIMEOUT_S = 600
_CHUNK = 1 << 20


def is_rauc_bundle(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == SQUASHFS_MAGIC


def read_rauc_bundle(path: Path, ca: Path | None = None) -> Bundle:
    """The bundle's manifest, images and signature state (checked against the
    CA bundle `ca`, as `rauc info --keyring` does; None: unchecked)."""
    total = path.stat().st_size
    with path.open("rb") as f:
        if f.read(4) != SQUASHFS_MAGIC:
            raise BundleError(f"{path} is no RAUC bundle: no squashfs at its start", REBUILD)
        if total < 4 + _SIZE_BYTES:
            raise BundleError(f"{path} is truncated: {total} bytes", REBUILD)
        f.seek(total - _SIZE_BYTES)
        sig_size = int.from_bytes(f.read(_SIZE_BYTES), "big")
        if not 0 < sig_size <= total - _SIZE_BYTES - 4:
            raise BundleError(
                f"{path} is truncated or no RAUC bundle: its last 8 bytes give a signature "
                f"of {sig_size} bytes in a file of {total}",
                REBUILD,
            )
        payload = total - _SIZE_BYTES - sig_size
        f.seek(payload)
        sig_bytes = f.read(sig_size)
    with tempfile.TemporaryDirectory(prefix="ab-rauc-") as tmp:
        sig = Path(tmp) / "bundle.sig"
        sig.write_bytes(sig_bytes)
        # The verity format carries its manifest inside the signature; the
        # plain format signs the squashfs itself, detached.
        what = f"the signature of {path}"
        cms_attached = cms.attached(sig, what)
        if cms_attached:
            verdict = cms.check(sig, ca, None, what)
            manifest_text = verdict.content or b""
        else:
            content = Path(tmp) / "bundle.squashfs"
            _copy_prefix(path, content, payload)
            verdict = cms.check(sig, ca, content, what)
            manifest_text = _unsquash(path, "manifest.raucm")
        manifest = _parse_manifest(manifest_text, path)
        # An attached manifest is the verity format's (or crypt's, which RAUC 1.8
        # names in [bundle] format); a detached signature is the plain format's.
        fmt = manifest.get("bundle", "format", fallback="verity") if cms_attached else "plain"
        images = _images(manifest, path, check=verdict.signature is not Signature.INVALID)
    update = manifest["update"] if manifest.has_section("update") else {}
    compatible = update.get("compatible")
    if not compatible:
        raise BundleError(f"{path}: the manifest names no [update] compatible", REBUILD)
    return Bundle(
        "rauc",
        fmt,
        update.get("version"),
        (compatible,),
        images,
        True,
        verdict.signature,
        verdict.problem,
        verdict.signer,
    )


def _copy_prefix(path: Path, dest: Path, length: int) -> None:
    with path.open("rb") as src, dest.open("wb") as out:
        left = length
        while left:
            chunk = src.read(min(_CHUNK, left))
            if not chunk:
                raise BundleError(f"{path} ended after {length - left} bytes", REBUILD)
            out.write(chunk)
            left -= len(chunk)


def _unsquash(path: Path, name: str) -> bytes:
    """One file of the bundle's squashfs (unsquashfs ignores what follows it)."""
    found = shutil.which("unsquashfs") or shutil.which("unsquashfs", path="/usr/sbin:/sbin")
    if found is None:
        raise EnvironmentMissing("unsquashfs is not installed", "apt-get install squashfs-tools")
    try:
        done = subprocess.run(
            [found, "-cat", str(path), name], capture_output=True, timeout=_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise BundleError(f"unsquashfs took over {_TIMEOUT_S} s on {path}", REBUILD) from err
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines() or ["no output"]
        raise BundleError(f"{path}: {name} unreadable in its squashfs: {lines[-1]}", REBUILD)
    return done.stdout


def _parse_manifest(text: bytes, path: Path) -> configparser.ConfigParser:
    manifest = configparser.ConfigParser(interpolation=None)
    try:
        manifest.read_string(text.decode())
    except (UnicodeDecodeError, configparser.Error) as err:
        cause = " ".join(str(err).split())
        raise BundleError(f"{path}: its manifest is no RAUC manifest: {cause}", REBUILD) from err
    return manifest


def _images(
    manifest: configparser.ConfigParser, path: Path, *, check: bool
) -> tuple[BundleImage, ...]:
    """Each [image.<slotclass>], hashed out of the squashfs and compared with
    the manifest (not for a bundle whose signature is already invalid)."""
    images = []
    for section in manifest.sections():
        if not section.startswith("image."):
            continue
        entry = manifest[section]
        filename = entry.get("filename")
        if not filename:
            raise BundleError(f"{path}: manifest [{section}] names no filename", REBUILD)
        size, sha = int(entry.get("size", "-1")), entry.get("sha256", "")
        if check:
            data = _unsquash(path, filename)
            found = hashlib.sha256(data).hexdigest()
            if (len(data), found) != (size, sha):
                raise BundleError(
                    f"{path}: image {filename} is {len(data)} bytes with sha256 {found}, "
                    f"its manifest says {size} bytes with sha256 {sha}",
                    REBUILD,
                )
        images.append(BundleImage(section.removeprefix("image."), filename, size, sha))
    return tuple(images)
