"""Where a replay finds the bytes of a captured slot: a payload store keyed by sha256.

The reference image is one store: its update payloads (v2, v2-bad, …) and
the release its disk ships in both slots (v1). A folder of rootfs images
(`--payloads DIR`, e.g. the releases of a product) is another. A slot is
found by the sha256 the device computed over its file system; failing that,
by the release version the slot reported (the same release built elsewhere).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessConfigError
from harness.fieldcase.bundle import SlotState
from harness.fieldcase.ext4 import fs_bytes
from harness.images import ImageSet, diskimage

_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredPayload:
    """A rootfs image in the store: `size` bytes of `source` from `offset`."""

    name: str
    version: str | None
    sha256: str
    size: int
    source: Path
    offset: int = 0

    def read(self) -> bytes:
        with self.source.open("rb") as f:
            f.seek(self.offset)
            return f.read(self.size)


@dataclass(frozen=True)
class Found:
    payload: StoredPayload
    how: str  # "sha256" or "version"


class PayloadStore:
    """Payloads by sha256 (and by version, as the fallback)."""

    def __init__(self, payloads: Iterable[StoredPayload] = ()) -> None:
        self.payloads = list(payloads)

    @classmethod
    def of_image(cls, image: ImageSet, slot_a: int) -> PayloadStore:
        """The reference image's payloads and the release in its disk's slot A (v1)."""
        found = [
            StoredPayload(p.name, p.version, p.sha256, p.size, p.path)
            for p in image.payloads.values()
        ]
        disk = image.file("disk")
        part = next(p for p in diskimage.partitions(disk) if p.number == slot_a)
        with disk.open("rb") as f:
            f.seek(part.start_bytes + 1024)
            size = fs_bytes(f.read(1024)) or part.size_bytes
        digest = _sha256(disk, part.start_bytes, size)
        version = _ext4_version(disk, part.start_bytes)
        found.append(StoredPayload("v1", version, digest, size, disk, part.start_bytes))
        return cls(found)

    def add_folder(self, folder: Path) -> None:
        """Every regular file of `folder` as a payload (its version unknown)."""
        if not folder.is_dir():
            raise HarnessConfigError(
                f"payload folder {folder} does not exist", "give a folder of rootfs images"
            )
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            size = path.stat().st_size
            version = _ext4_version(path, 0)
            self.payloads.append(
                StoredPayload(path.name, version, _sha256(path, 0, size), size, path)
            )

    def find(self, slot: SlotState) -> Found | None:
        for payload in self.payloads:
            if payload.sha256 == slot.sha256 and payload.size == slot.bytes:
                return Found(payload, "sha256")
        if slot.version is not None:
            for payload in self.payloads:
                if payload.version == slot.version:
                    return Found(payload, "version")
        return None

    def describe(self) -> str:
        return ", ".join(f"{p.name} (version {p.version})" for p in self.payloads) or "empty"


def _sha256(path: Path, offset: int, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        left = size
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _ext4_version(path: Path, offset: int) -> str | None:
    """/etc/version inside an ext4 image (debugfs at a byte offset), None if unreadable."""
    tool = shutil.which("debugfs") or shutil.which("debugfs", path="/usr/sbin:/sbin")
    if tool is None:
        return None
    proc = subprocess.run(
        [tool, "-R", "cat etc/version", f"{path}?offset={offset}"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    text = proc.stdout.decode(errors="replace").strip()
    return text or None
