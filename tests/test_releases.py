"""Bad releases derived from a good one (harness.images.releases): each edit is made,
nothing else changes, the good image is left as it was, and on a real device
each derived release fails the way its name says."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from harness.images import Payload
from harness.images.releases import Conventions, DerivationImpossible, derive
from harness.judge.verdict import outcome


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cat(image: Path, path: str) -> bytes:
    return subprocess.run(
        ["debugfs", "-R", f"cat {path}", str(image)], capture_output=True, check=True
    ).stdout


@pytest.fixture
def good(tmp_path: Path) -> Path:
    """A small ext4 release: a shell, an init, a kernel, a version, a health folder."""
    tree = tmp_path / "tree"
    for d in ("bin", "sbin", "boot", "etc/health.d"):
        (tree / d).mkdir(parents=True)
    (tree / "bin/sh").write_bytes(b"\x7fELF shell")
    (tree / "sbin/init").symlink_to("/bin/busybox")
    (tree / "boot/Image").write_bytes(b"ARM\x64" * 4096)
    (tree / "etc/version").write_text("7\n")
    image = tmp_path / "release.img"
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image), "4M"], check=True, timeout=60
    )
    return image


@pytest.mark.parametrize(
    ("kind", "path", "expect"),
    [
        ("bad", "/etc/health.d/99-derived-fails", b"exit 1"),
        ("panic-init", "/sbin/init", b"init exits on purpose"),
        ("hang", "/sbin/init", b"/dev/watchdog"),
    ],
)
def test_each_derivation_makes_its_edit_and_keeps_the_good_image(
    good: Path, tmp_path: Path, kind: str, path: str, expect: bytes
) -> None:
    before = _sha(good)
    made = derive(good, kind, "7", tmp_path / "cache", Conventions())

    assert expect in _cat(made.path, path)
    assert _cat(made.path, "/etc/version") == f"7-{kind}\n".encode()
    assert made.version == f"7-{kind}" and made.sha256 == _sha(made.path)
    assert _sha(good) == before
    fsck = subprocess.run(["e2fsck", "-fn", str(made.path)], capture_output=True, check=False)
    assert fsck.returncode == 0, fsck.stdout


def test_a_broken_kernel_has_its_header_zeroed_and_nothing_else(good: Path, tmp_path: Path) -> None:
    made = derive(good, "broken-kernel", "7", tmp_path / "cache", Conventions())

    kernel, original = _cat(made.path, "/boot/Image"), _cat(good, "/boot/Image")
    assert len(kernel) == len(original)
    assert kernel[:4096] == bytes(4096) and original[:4096] != bytes(4096)
    assert kernel[4096:] == original[4096:]


def test_a_derived_release_is_cached(good: Path, tmp_path: Path) -> None:
    first = derive(good, "bad", "7", tmp_path / "cache", Conventions())
    mtime = first.path.stat().st_mtime_ns
    again = derive(good, "bad", "7", tmp_path / "cache", Conventions())
    assert (again.path, again.path.stat().st_mtime_ns) == (first.path, mtime)


def test_what_cannot_be_derived_says_why(good: Path, tmp_path: Path) -> None:
    squash = tmp_path / "rootfs.squashfs"
    squash.write_bytes(b"hsqs" + bytes(8192))
    with pytest.raises(DerivationImpossible, match="not an ext2/3/4 image"):
        derive(squash, "bad", "7", tmp_path / "cache", Conventions())
    with pytest.raises(DerivationImpossible, match=r"no kernel at /boot/vmlinuz-6\.1"):
        derive(good, "broken-kernel", "7", tmp_path / "c", Conventions(kernel="/boot/vmlinuz-6.1"))
    with pytest.raises(DerivationImpossible, match="names no health check folder"):
        derive(good, "bad", "7", tmp_path / "c", Conventions(health_dir=None))
    with pytest.raises(DerivationImpossible, match="no /bin/bash"):
        derive(good, "panic-init", "7", tmp_path / "c", Conventions(shell="/bin/bash"))


@pytest.mark.qemu
@pytest.mark.parametrize("kind", ["bad", "panic-init"])
def test_a_derived_release_rolls_back_on_the_device(
    booted, push, observe, payloads, tmp_path_factory, kind
):
    made = derive(payloads["v2"].path, kind, "2", tmp_path_factory.mktemp("derived"), Conventions())
    release = Payload(f"v2-{kind}", made.path, made.sha256, made.version)

    assert push.install(release).ok
    result = outcome("A", booted.reboot(max_boots=2), observe.env_host("after rollback"))

    assert result.rolled_back, result.describe()
    tried = result.boots[0]
    assert not tried.reached_shell or tried.health == "fail", tried
    assert observe.booted_slot().slot == "A"
