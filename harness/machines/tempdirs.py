"""labgrid's QEMU temp folders (console socket, QMP sockets, stderr, a UEFI
variable store): marked with the harness process that owns them, so a later
run can remove what a killed one left, and removed at once when an activation
is cut short (labgrid removes them only on deactivation)."""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

OWNER_FILE = "ab-harness-owner.pid"
TEMPDIR_PREFIX = "labgrid-qemu-tmp-"


def remove_stale_tempdirs(root: Path | None = None) -> list[Path]:
    """Remove labgrid QEMU temp folders that a dead harness process left behind.

    Only folders the harness marked (OWNER_FILE) and whose owner is gone are
    removed; another user's or a live run's are left alone.
    """
    removed = []
    for folder in (root or Path(tempfile.gettempdir())).glob(f"{TEMPDIR_PREFIX}*"):
        try:
            pid = int((folder / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        if Path(f"/proc/{pid}").exists():
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        log.info("removed %d stale QEMU temp folders", len(removed))
    return removed


def drop_tempdir(tempdir: str | None, sock: socket.socket | None) -> None:
    """Close the console socket and remove the temp folder of an activation
    that did not complete (its driver is not active: nothing else will)."""
    if sock is not None:
        sock.close()
    if tempdir:
        shutil.rmtree(tempdir, ignore_errors=True)
