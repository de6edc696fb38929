"""device_files reads exact byte ranges through a shell, and says so when it cannot.

The shell here is the host's own `sh` with busybox's applets, the same
commands a busybox device runs, so the encoding round trip is real.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.device.device_files import read_bytes, sha256_of
from harness.errors import DeviceError


class BusyboxShell:
    """Runs each command in busybox sh on the host, like a device's console shell."""

    def __init__(self, bindir: Path, mangle: bool = False) -> None:
        self.bindir = bindir
        self.mangle = mangle

    def exec(self, cmd: str, timeout_s: float = 30.0) -> tuple[int, str]:
        done = subprocess.run(
            [str(self.bindir / "sh"), "-c", f"{cmd} 2>&1"],
            capture_output=True,
            check=False,
            text=True,
            timeout=timeout_s,
            env={"PATH": str(self.bindir)},
        )
        out = done.stdout
        if self.mangle:
            out = out.replace("A", "@", 1)
        return done.returncode, out

    def exec0(self, cmd: str, timeout_s: float = 30.0) -> str:
        code, out = self.exec(cmd, timeout_s)
        assert code == 0, out
        return out


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(range(256)) * 40 + b"tail")
    return path


@pytest.fixture
def bindir(tmp_path: Path) -> Path:
    """A PATH holding busybox's applets only, as on the reference images."""
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.fail("busybox is not installed on this host: apt-get install busybox-static")
    folder = tmp_path / "bin"
    folder.mkdir()
    for applet in ("sh", "dd", "base64", "sha256sum", "head", "["):
        (folder / applet).symlink_to(busybox)
    return folder


def test_aligned_and_unaligned_ranges_come_back_exact(blob: Path, bindir: Path) -> None:
    data = blob.read_bytes()
    shell = BusyboxShell(bindir)
    assert read_bytes(shell, str(blob)) == data
    assert read_bytes(shell, str(blob), 512, 1024) == data[512:1536]
    assert read_bytes(shell, str(blob), 3, 700) == data[3:703]


def test_a_short_file_or_a_mangled_line_is_a_device_error(blob: Path, bindir: Path) -> None:
    with pytest.raises(DeviceError, match="expected 4096"):
        read_bytes(BusyboxShell(bindir), str(blob), 8192, 4096)
    with pytest.raises(DeviceError, match="cannot read /no/such"):
        read_bytes(BusyboxShell(bindir), "/no/such", 0, 512)
    with pytest.raises(DeviceError, match="mangled"):
        read_bytes(BusyboxShell(bindir, mangle=True), str(blob), 0, 512)


def test_sha256_is_computed_on_the_device_side(blob: Path, bindir: Path) -> None:
    data = blob.read_bytes()
    shell = BusyboxShell(bindir)
    assert sha256_of(shell, str(blob)) == hashlib.sha256(data).hexdigest()
    assert sha256_of(shell, str(blob), 1024) == hashlib.sha256(data[:1024]).hexdigest()
    assert sha256_of(shell, str(blob), 1000) == hashlib.sha256(data[:1000]).hexdigest()
