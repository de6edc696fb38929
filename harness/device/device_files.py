"""Bytes of the device's files and block devices, read over its shell.

A board has no host-side view of its disk: what the harness knows of its env
copies, its partition table or a slot's first sectors comes through the serial
console. Binary data cannot cross a console as it is, so the device encodes it
with busybox's `base64` and the host decodes and checks the length, which
catches a line the console dropped or mangled. A console carries ~10 KiB/s
under QEMU's emulated UART, so callers read what they need (an env copy, a
sector range), never a slot: for a slot, ask the device for its sha256.
"""

from __future__ import annotations

import base64
import binascii
import shlex

from harness.device.shell import ShellLike
from harness.errors import DeviceError

BLOCK = 512


def read_bytes(
    shell: ShellLike,
    path: str,
    offset: int = 0,
    length: int | None = None,
    timeout_s: float = 60.0,
) -> bytes:
    """Read `length` bytes at `offset` of `path` on the device (to its end when None).

    The read is done with `dd` in 512-byte blocks when the range is aligned, and
    byte-wise otherwise, so a raw partition or an env file in the middle of a
    device can be read exactly.
    """
    if offset < 0 or (length is not None and length < 0):
        raise ValueError(f"bad range: offset {offset}, length {length}")
    quoted = shlex.quote(path)
    if length == 0:
        return b""
    if offset % BLOCK == 0 and (length is None or length % BLOCK == 0):
        count = "" if length is None else f" count={length // BLOCK}"
        dd = f"dd if={quoted} bs={BLOCK} skip={offset // BLOCK}{count} 2>/dev/null"
    else:
        count = "" if length is None else f" count={length}"
        dd = f"dd if={quoted} bs=1 skip={offset}{count} 2>/dev/null"
    code, text = shell.exec(f"[ -r {quoted} ] && {dd} | base64", timeout_s)
    if code != 0:
        raise DeviceError(
            f"cannot read {path} on the device (exit {code})",
            "check the path exists on this image and that its shell has dd and base64 (busybox)",
        )
    encoded = "".join(line.strip() for line in text.splitlines())
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise DeviceError(
            f"the console mangled {path} in transit: its base64 does not decode",
            "read it again; a console that keeps mangling data needs a lower baud rate",
        ) from None
    if length is not None and len(data) != length:
        raise DeviceError(
            f"read {len(data)} bytes of {path} at offset {offset}, expected {length}",
            "the file or device is shorter than that, or the console dropped a line",
        )
    return data


def sha256_of(
    shell: ShellLike, path: str, length: int | None = None, timeout_s: float = 120.0
) -> str:
    """sha256 of `path` on the device (its first `length` bytes when given), computed there."""
    quoted = shlex.quote(path)
    if length is None:
        cmd = f"sha256sum {quoted}"
    elif length % BLOCK == 0:
        cmd = f"dd if={quoted} bs={BLOCK} count={length // BLOCK} 2>/dev/null | sha256sum"
    else:
        cmd = f"head -c {length} {quoted} | sha256sum"
    out = shell.exec0(cmd, timeout_s)
    digest = out.strip().split()[0] if out.strip() else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise DeviceError(
            f"the device's sha256sum printed no digest for {path}: {out.strip()[:80]}"
        )
    return digest
