"""Read an SWUpdate .swu and check it against its sw-description.

A .swu, as SWUpdate's documentation builds it, is a CPIO archive in the
"new" ASCII format (`cpio -o -H newc`, or `-H crc` with a checksum per
file): `sw-description` first, `sw-description.sig` (CMS, detached over
sw-description) next where the update is signed, then the images. Each
entry is a 110-byte ASCII header (magic 070701 or 070702, thirteen 8-digit
hex fields), its name, its data, each padded to 4 bytes; `TRAILER!!!`
ends it. sw-description is libconfig text: `software = { version;
hardware-compatibility; images: ( { filename; device; sha256; } ); ... }`,
images possibly under a board, a selection and a mode (SWUpdate's
collections, its dual-copy layout). Every entry's data is hashed while the
archive is read once, and each image is compared with its description.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harness.artifacts import cms
from harness.artifacts.bundle import REBUILD, Bundle, BundleError, BundleImage
from harness.artifacts.libconfig import LibconfigError, loads
from harness.artifacts.model import Signature

MAGICS = {b"070701": "cpio-newc", b"070702": "cpio-crc"}
_HEADER = 110
_TRAILER = "TRAILER!!!"
_SMALL = 1 << 20  # sw-description and its signature are kilobytes
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One archive member: its size, its sha256 and, for the small leading
    members, its bytes; the sum of its bytes where the crc format has one."""

    name: str
    size: int
    sha256: str
    data: bytes | None
    checksum_ok: bool = True


def is_swu(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(6) in MAGICS


def read_swu(path: Path, ca: Path | None = None) -> Bundle:
    """The .swu's sw-description, images and signature state (checked against
    the CA bundle `ca`, as `swupdate -k CA` does; None: unchecked)."""
    with path.open("rb") as f:
        fmt = MAGICS.get(f.read(6))
        if fmt is None:
            raise BundleError(
                f"{path} is no .swu: it does not start with a CPIO newc header", REBUILD
            )
        f.seek(0)
        entries = list(_entries(f, path))
    if not entries or entries[0].name != "sw-description":
        first = entries[0].name if entries else "nothing"
        raise BundleError(f"{path}: its first member is {first}, not sw-description", REBUILD)
    description = entries[0].data or b""
    signed = len(entries) > 1 and entries[1].name == "sw-description.sig"
    verdict = cms.Verdict(Signature.INVALID if ca else Signature.UNCHECKED, None, None)
    if signed:
        verdict = _check_signature(path, description, entries[1].data or b"", ca)
    elif ca is not None:
        verdict = cms.Verdict(Signature.INVALID, "the .swu has no sw-description.sig", None)
    software = _software(description, path)
    by_name = {e.name: e for e in entries}
    images = tuple(
        _image(found, by_name, path, check=verdict.signature is not Signature.INVALID)
        for found in _image_settings(software)
    )
    hardware = software.get("hardware-compatibility") or []
    version = software.get("version")
    return Bundle(
        "swupdate",
        fmt,
        None if version is None else str(version),
        tuple(str(h) for h in hardware),
        images,
        signed,
        verdict.signature,
        verdict.problem,
        verdict.signer,
    )


def _entries(f: IO[bytes], path: Path) -> Iterator[Entry]:
    """Every member up to the trailer, hashed on the way; a header that is not
    one, or an archive that ends early, is a `BundleError` naming the member."""
    offset = 0
    while True:
        header = f.read(_HEADER)
        if len(header) < _HEADER:
            raise BundleError(
                f"{path} is truncated: it ends at byte {offset}, before its trailer", REBUILD
            )
        if header[:6] not in MAGICS:
            raise BundleError(
                f"{path}: no CPIO header at byte {offset} (magic {header[:6]!r})", REBUILD
            )
        try:
            fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError as err:
            raise BundleError(
                f"{path}: a CPIO header at byte {offset} holds no hex numbers", REBUILD
            ) from err
        size, name_size, check = fields[6], fields[11], fields[12]
        raw_name = f.read(name_size)
        name = raw_name.rstrip(b"\0").decode(errors="replace")
        offset += _HEADER + name_size
        f.read(-offset % 4)
        offset += -offset % 4
        if name == _TRAILER:
            return
        digest, total, kept = hashlib.sha256(), 0, bytearray()
        left = size
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise BundleError(
                    f"{path} is truncated: member {name} ends after {size - left} of {size} bytes",
                    REBUILD,
                )
            digest.update(chunk)
            total += sum(chunk)
            if size <= _SMALL:
                kept += chunk
            left -= len(chunk)
        offset += size
        f.read(-offset % 4)
        offset += -offset % 4
        crc_ok = header[:6] != b"070702" or total & 0xFFFFFFFF == check
        if not crc_ok:
            raise BundleError(f"{path}: member {name} does not match its CPIO checksum", REBUILD)
        yield Entry(name, size, digest.hexdigest(), bytes(kept) if size <= _SMALL else None)


def _check_signature(
    path: Path, description: bytes, sig_bytes: bytes, ca: Path | None
) -> cms.Verdict:
    with tempfile.TemporaryDirectory(prefix="ab-swu-") as tmp:
        sig, content = Path(tmp) / "sw-description.sig", Path(tmp) / "sw-description"
        sig.write_bytes(sig_bytes)
        content.write_bytes(description)
        return cms.check(sig, ca, content, f"{path}'s sw-description.sig")


def _software(description: bytes, path: Path) -> dict[str, Any]:
    try:
        parsed = loads(description.decode())
    except (UnicodeDecodeError, LibconfigError) as err:
        raise BundleError(
            f"{path}: its sw-description is no libconfig text: {err}", REBUILD
        ) from err
    software = parsed.get("software")
    if not isinstance(software, dict):
        raise BundleError(f"{path}: its sw-description has no 'software' group", REBUILD)
    return software


def _image_settings(group: dict[str, Any], where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every entry of an `images` list, at the top or under boards,
    selections and modes (SWUpdate's collections), with where it was found."""
    for key, value in group.items():
        if key == "images" and isinstance(value, list):
            yield from ((where, image) for image in value if isinstance(image, dict))
        elif isinstance(value, dict):
            yield from _image_settings(value, f"{where}.{key}" if where else key)


def _image(
    found: tuple[str, dict[str, Any]], entries: dict[str, Entry], path: Path, *, check: bool
) -> BundleImage:
    where, image = found
    filename = str(image.get("filename", ""))
    entry = entries.get(filename)
    if entry is None:
        raise BundleError(
            f"{path}: sw-description names image {filename!r}, the archive lacks it", REBUILD
        )
    claimed = image.get("sha256")
    if check and claimed is not None and claimed != entry.sha256:
        raise BundleError(
            f"{path}: image {filename} has sha256 {entry.sha256}, "
            f"its sw-description says {claimed}",
            REBUILD,
        )
    target = image.get("device") or image.get("volume") or image.get("path")
    name = f"{where}:{filename}" if where else filename
    return BundleImage(
        name, filename, entry.size, entry.sha256, None if target is None else str(target)
    )
