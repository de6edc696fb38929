"""A "USB key" as a disk image: one FAT filesystem holding files, made on the host.

A client that installs from a file (Mender's `mender install PATH`) gets its
payload on a key the way a person would hand it over: a FAT filesystem with
the file on it, plugged in while the device runs and mounted there. The
image is made with `mkfs.vfat -C` and `mcopy` (dosfstools, mtools): no root,
no loop device.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from harness.errors import EnvironmentMissing, HarnessError

# FAT, directory and reserved sectors on top of the files, and a margin.
_OVERHEAD_KIB = 2048
_TIMEOUT_S = 120.0


def make_fat_key(files: Mapping[str, Path], out: Path, label: str = "ABKEY") -> Path:
    """Write a FAT image at `out` holding each `files` value under its key (a
    name in the root folder); written to a temporary name and renamed, so a
    half-made key is never found under `out`."""
    for tool, package in (("mkfs.vfat", "dosfstools"), ("mcopy", "mtools")):
        if shutil.which(tool) is None:
            raise EnvironmentMissing(
                f"{tool} is not installed", f"apt-get install --no-install-recommends {package}"
            )
    size_kib = sum(-(-p.stat().st_size // 1024) for p in files.values()) + _OVERHEAD_KIB
    size_kib += size_kib // 16  # cluster slack
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    partial.unlink(missing_ok=True)
    _run(["mkfs.vfat", "-C", "-n", label, "-i", "ab000001", str(partial), str(size_kib)])
    for name, path in files.items():
        _run(["mcopy", "-i", str(partial), str(path), f"::{name}"])
    partial.rename(out)
    return out


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise HarnessError(
            f"{argv[0]} did not finish within {_TIMEOUT_S:.0f} s", "check the host's disk"
        ) from err
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise HarnessError(
            f"{argv[0]} failed (exit {done.returncode}): {last[0]}", "check the host's disk"
        )


def run_from_key(device: str, file: str, command: str) -> tuple[str, str]:
    """A device shell command running `command FILE` with the key at `device`
    mounted read-only (unmounted again whatever the outcome; exit 90 when it
    cannot be mounted), and the `command FILE` it runs, for the report."""
    mount = f"/run/ab-key/{Path(device).name}"
    target = shlex.quote(f"{mount}/{file}")
    script = (
        f"mkdir -p {mount} && mount -t vfat -o ro {shlex.quote(device)} {mount}"
        f" || {{ echo 'ab-key: cannot mount {device}'; exit 90; }}; "
        f"{command} {target}; rc=$?; umount {mount}; exit $rc"
    )
    return f"( {script} )", f"{command} {target}"
