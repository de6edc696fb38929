"""The user's own files, named by path in a target YAML, are never written.

A target may name its disk by path (`images: {disk: /path/to/my.sdimg}`)
instead of a recipe's `@image:` output. QEMU writes its disk (U-Boot saves
its env, Linux mounts rw), so each test boots a private copy:

- a raw disk (`.img`, `.sdimg`, `.wic`, anything not qcow2) is copied with
  `cp --reflink=auto --sparse=always`: a copy-on-write clone where the
  filesystem has them (btrfs, XFS), else a sparse copy, as recipe images
  get. It stays a raw file, so every host-side reader and writer (the env
  at raw offsets, FAT env files through mtools, `sfdisk`, the slot hashes,
  the fault injectors) works on it unchanged, and a power cut (SIGKILL)
  keeps exactly the writes QEMU completed, as on the user's card;
- a qcow2 disk is converted to a raw copy (`qemu-img convert`), for the
  same readers.

Why not a qcow2 overlay over the user's raw file: QEMU keeps a qcow2's
cluster tables in memory and writes them back on a flush, which an SD card
never sends. Measured with QEMU 7.2: a 64 KiB write through a virtio disk
(write-cache on, cache.no-flush as cache=unsafe) into a fresh overlay,
then SIGKILL: the overlay reads the old bytes; with write-cache off it
keeps them. So a power cut would drop writes the guest saw complete, and
the host-side readers and writers (raw offsets, mtools, sfdisk) would need
a raw view made for every read: `qemu-img convert` of the overlay takes
0.15 s on the 256 MiB stock disk (66 MB of data), where the sparse copy
per test takes 0.04 s (ext4, warm cache).

Read-only files (U-Boot as `-bios`, a pflash env mapped `readonly=on`, a
release hot-plugged read-only) are used in place; a UEFI variable store is
copied per test by the QEMU driver.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path

from harness.errors import EnvironmentMissing, HarnessConfigError

log = logging.getLogger(__name__)

QCOW2_MAGIC = b"QFI\xfb"
_COPY_TIMEOUT_S = 600.0


def is_qcow2(path: Path) -> bool:
    """Whether `path` is a qcow2 image (by its magic, whatever its name)."""
    with path.open("rb") as f:
        return f.read(4) == QCOW2_MAGIC


def private_copy(source: Path, workdir: Path) -> Path:
    """A raw copy of the user's disk `source` in `workdir`, for one test to
    write; `source` itself is only read."""
    if not source.is_file():
        raise HarnessConfigError(
            f"disk image {source} (named by path in the target YAML) does not exist",
            "fix the path under images: in the target YAML",
        )
    workdir.mkdir(parents=True, exist_ok=True)
    if is_qcow2(source):
        dest = workdir / f"{source.stem}.raw"
        argv = ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(source), str(dest)]
    else:
        dest = workdir / source.name
        argv = ["cp", "--sparse=always", "--reflink=auto", str(source), str(dest)]
    if dest.resolve() == source.resolve():
        raise HarnessConfigError(
            f"disk image {source} lies in the test's own folder",
            "keep the user's disk outside the results directory",
        )
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=_COPY_TIMEOUT_S
        )
    except FileNotFoundError as err:
        raise EnvironmentMissing(
            f"{argv[0]} not found (needed to copy {source})", "apt-get install qemu-utils"
        ) from err
    if done.returncode != 0:
        raise HarnessConfigError(
            f"cannot copy disk image {source} to {dest}: {done.stderr.strip()[:200]}",
            "check free disk space and permissions of the results directory",
        )
    log.info("disk %s: this test runs the copy %s", source, dest)
    return dest


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a whole file (a user's file shown unchanged, a derived
    release, an artifact's sidecar)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
