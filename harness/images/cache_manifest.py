"""What the harness recorded about a built image, and checks that the cache still holds it.

A recipe's own manifest.json says what it built; this module writes a second
file beside it, ``cache-manifest.json``, with the size, sha256 and mtime of
every output, once the recipe has succeeded.  A cache entry can then be
checked two ways:

- ``quick``: at every use.  Every file exists with its recorded size; files
  under `SMALL_FILE` are hashed whole; larger ones have their first `HEAD`
  bytes hashed (a zeroed boot sector or partition table shows there) and are
  hashed whole only when their mtime moved since the build (anything that
  writes a file moves its mtime).  It reads a few MiB at most.
- ``full``: every file hashed whole (``ab-harness images verify``).

Checking never opens anything for writing, so a complete image in a
read-only cache can be used as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

log = logging.getLogger(__name__)

NAME = "cache-manifest.json"
FORMAT = 1
SMALL_FILE = 1 << 20  # hashed whole at every use
HEAD = 64 << 10  # bytes hashed at every use from the start of a larger file
_CHUNK = 1 << 20


class CacheEntryBad(HarnessError):
    """A cache entry does not hold what was recorded when it was built."""


@dataclass(frozen=True)
class FileRecord:
    """One output file as it was right after the build."""

    size: int
    sha256: str
    head_sha256: str
    mtime_ns: int


@dataclass(frozen=True)
class Verified:
    """What a check read: files checked and bytes hashed."""

    files: int
    bytes_hashed: int


def record(directory: Path) -> dict[str, FileRecord]:
    """Hash every file of a freshly built image and write cache-manifest.json into it."""
    records: dict[str, FileRecord] = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file() and p.name != NAME):
        stat = path.stat()
        records[path.name] = FileRecord(
            size=stat.st_size,
            sha256=_sha256(path, stat.st_size),
            head_sha256=_sha256(path, min(HEAD, stat.st_size)),
            mtime_ns=stat.st_mtime_ns,
        )
    data = {"format": FORMAT, "files": {n: vars(r) for n, r in records.items()}}
    (directory / NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return records


def is_complete(directory: Path) -> bool:
    """True once the harness has recorded the build (the last thing a build does)."""
    return (directory / NAME).is_file()


def verify(directory: Path, name: str, *, full: bool = False) -> Verified:
    """Check the entry against its cache-manifest.json (quick, or `full`).

    Raises `CacheEntryBad` naming the first bad file and the command that
    rebuilds the entry.
    """
    records = _load(directory, name)
    hashed = 0
    for file, rec in sorted(records.items()):
        path = directory / file
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise _bad(name, path, "is missing") from None
        if stat.st_size != rec.size:
            raise _bad(name, path, f"is {stat.st_size} bytes, built as {rec.size} (truncated?)")
        if full or rec.size < SMALL_FILE or stat.st_mtime_ns != rec.mtime_ns:
            if stat.st_mtime_ns != rec.mtime_ns and not full:
                log.info("%s changed since the build (mtime): hashing it whole", path)
            hashed += rec.size
            if _sha256(path, rec.size) != rec.sha256:
                raise _bad(name, path, "does not match the sha256 recorded at build (corrupted)")
        else:
            hashed += min(HEAD, rec.size)
            if _sha256(path, min(HEAD, rec.size)) != rec.head_sha256:
                raise _bad(
                    name,
                    path,
                    f"differs in its first {HEAD >> 10} KiB from the build "
                    "(boot sector overwritten?)",
                )
    return Verified(len(records), hashed)


def _load(directory: Path, name: str) -> dict[str, FileRecord]:
    path = directory / NAME
    try:
        data: Any = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        records = {str(n): FileRecord(**r) for n, r in data["files"].items()}
    except FileNotFoundError:
        raise _bad(name, path, "is missing (the entry was not built by this harness)") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise _bad(name, path, f"is unreadable ({err})") from None
    if "manifest.json" not in records:
        raise _bad(name, path, "does not list manifest.json")
    return records


def _bad(name: str, path: Path, problem: str) -> CacheEntryBad:
    return CacheEntryBad(
        f"image cache entry for '{name}' is bad: {path} {problem}",
        f"run 'ab-harness images build {name} --force' to rebuild it",
    )


def _sha256(path: Path, length: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        left = length
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()
