"""Run an external build tool with a clear error when it is missing or fails."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

# Debian package that ships each tool, so a missing tool names its fix.
TOOL_PACKAGES = {
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "mmd": "mtools",
    "mlabel": "mtools",
    "sfdisk": "fdisk",
    "mkimage": "u-boot-tools",
    "mkenvimage": "u-boot-tools",
    "cpio": "cpio",
    "depmod": "kmod",
    "busybox": "busybox-static",
    "grub-mkstandalone": "grub-common grub-efi-amd64-bin",
    "grub-editenv": "grub-common",
    "make": "make",
    "gcc": "gcc",
    "bc": "bc",
    "flex": "flex",
    "bison": "bison",
    "tar": "tar",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "arm-linux-gnueabihf-gcc": "gcc-arm-linux-gnueabihf",
}


class BuildError(RuntimeError):
    """A build step failed; the message is one line naming cause and fix."""


def need(tool: str) -> str:
    """Return the tool's path, or raise naming the Debian package to install."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        package = TOOL_PACKAGES.get(tool, tool)
        raise BuildError(
            f"'{tool}' is not installed — fix: apt-get install {package} (or run 'make setup')"
        )
    return path


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 600.0,
) -> bytes:
    """Run argv (first element resolved with `need`), return stdout, raise BuildError."""
    cmd = [need(str(argv[0])), *map(str, argv[1:])]
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, input=stdin, capture_output=True, env=env, check=False, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        name = Path(cmd[0]).name
        raise BuildError(
            f"{name} did not finish within {timeout_s:.0f} s (command: {' '.join(cmd)})"
            " — fix: check the network (package downloads) and free disk space"
        ) from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        detail = last[-1] if last else f"exit {proc.returncode}"
        raise BuildError(f"{Path(cmd[0]).name} failed: {detail} (command: {' '.join(cmd)})")
    return proc.stdout
