"""The size of an ext4 file system, from its superblock (bytes 1024..2047 of it).

A slot's partition is usually larger than the file system written into it;
the sha256 that names a release is over the file system's bytes only."""

from __future__ import annotations

import struct

MAGIC = 0xEF53
INCOMPAT_64BIT = 0x80


def fs_bytes(superblock: bytes) -> int | None:
    """Blocks times block size, or None when `superblock` is no ext2/3/4 superblock."""
    if len(superblock) < 1024 or struct.unpack_from("<H", superblock, 56)[0] != MAGIC:
        return None
    blocks_lo, log_size = struct.unpack_from("<I", superblock, 4)[0], superblock[24]
    incompat = struct.unpack_from("<I", superblock, 96)[0]
    blocks_hi = struct.unpack_from("<I", superblock, 0x150)[0] if incompat & INCOMPAT_64BIT else 0
    return int(((blocks_hi << 32) | blocks_lo) * (1024 << log_size))
