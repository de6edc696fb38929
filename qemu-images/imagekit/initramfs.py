"""A gzip'd newc cpio archive from a directory, reproducibly."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from imagekit.fsimage import BUILD_EPOCH
from imagekit.run import run


def pack_cpio(tree: Path, out: Path) -> None:
    """Pack `tree` as a gzip-compressed newc cpio archive (owner root, sorted)."""
    # Pinned times (cpio stores mtimes) make the archive the same on every build.
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (BUILD_EPOCH, BUILD_EPOCH), follow_symlinks=False)
    names = sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))
    listing = ("\n".join([".", *names]) + "\n").encode()
    archive = run(
        ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0", "--reproducible"],
        cwd=tree,
        stdin=listing,
    )
    with gzip.GzipFile(out, "wb", mtime=0, compresslevel=6) as gz:
        gz.write(archive)
    os.utime(out, (0, 0))
