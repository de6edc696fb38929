"""The compressions an artifact's inner tars come in, chosen by file suffix.

mender-artifact writes ``header.tar`` and ``data/NNNN.tar`` plain, ``.gz``
or ``.xz``; newer releases also ``.zst``, which Python 3.11 cannot read, so
that goes through the ``zstd`` tool (`harness.artifacts.zstd`).
"""

from __future__ import annotations

import gzip
import lzma
import tarfile
import zlib
from typing import IO, cast

from harness.artifacts.zstd import zstd_reader

SUFFIXES = {".gz": "gzip", ".xz": "lzma", ".zst": "zstd", "": "none"}

# Everything a damaged or truncated (compressed) tar stream can raise while read.
BROKEN = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)


def split_suffix(member: str) -> tuple[str, str]:
    """``("header.tar", "gzip")`` for ``header.tar.gz``; the compression by its name."""
    for suffix, name in SUFFIXES.items():
        if suffix and member.endswith(".tar" + suffix):
            return member[: -len(suffix)], name
    return member, "none"


def decompressed(raw: IO[bytes], member: str) -> IO[bytes]:
    """A reader of `raw` with the compression its name `member` says undone."""
    _, compression = split_suffix(member)
    if compression == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "lzma":
        return lzma.LZMAFile(raw)
    if compression == "zstd":
        return zstd_reader(raw, member)
    return raw


def drain(stream: IO[bytes], chunk: int = 1 << 20) -> None:
    """Read `stream` to its end, so a compressor's trailing checksum is checked too."""
    while stream.read(chunk):
        pass
