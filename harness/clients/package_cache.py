"""Where a client's own packages of a payload (a Mender artifact, an SWUpdate
.swu) and the FAT keys holding them are kept, built once by one worker.

Beside the image cache (`<cache>/artifacts/<image entry>/`) when the payload
sits in one that can be written, else in a temp folder; a lock file per
package, so parallel workers build it once.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.delivery.fat_key import make_fat_key
from harness.errors import HarnessConfigError
from harness.images import Payload
from harness.images.userfiles import sha256_of

Section = dict[str, Any]


def manifest_section(payload: Payload, key: str, missing: str, fix: str) -> tuple[Section, Path]:
    """The `key` section of the manifest of the image `payload` belongs to, and
    the manifest's path; `missing` and `fix` word the error when it has none."""
    manifest_path = payload.manifest or payload.path.parent / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as err:
        raise HarnessConfigError(
            f"payload '{payload.name}' has no readable image manifest ({manifest_path}: {err})",
            "use a payload of a built image",
        ) from None
    section = manifest.get(key)
    if not isinstance(section, dict):
        raise HarnessConfigError(
            f"image '{manifest.get('name')}' has no {missing} (its manifest has no '{key}')", fix
        )
    return section, manifest_path


def cache_dir(payload: Payload) -> Path:
    """`<cache>/artifacts/<image entry>/` when the payload sits in an image
    cache (`<cache>/images/<entry>/`) that can be written, else a temp folder."""
    entry = payload.path.parent
    if entry.parent.name == "images":
        folder = entry.parent.parent / "artifacts" / entry.name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            pass
    folder = Path(tempfile.gettempdir()) / "ab-harness-artifacts" / entry.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class locked:
    """An exclusive lock file, so parallel workers build one package once."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> None:
        self._file = self._path.open("w")
        fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def key_for(package: Path, member: str, name: str) -> Payload:
    """A FAT key holding `package` as `member` (built once, then cached), as
    the payload named `name` is plugged into the device."""
    out = package.with_suffix(".key.img")
    with locked(package.with_name(f".{package.name}.key.lock")):
        if not out.is_file():
            make_fat_key({member: package}, out)
        sidecar = out.with_suffix(".sha256")
        if not sidecar.is_file() or sidecar.stat().st_mtime < out.stat().st_mtime:
            sidecar.write_text(sha256_of(out) + "\n")
    return Payload(name, out, sidecar.read_text().strip(), "")
