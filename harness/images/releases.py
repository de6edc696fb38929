"""Bad releases derived from a good one, so a team need not hand-build them.

A rollback scenario needs releases that fail in known ways: one whose health
check fails, one whose kernel does not start, one whose init dies (a kernel
panic), one whose userspace hangs. A team gives the harness one good release
(a raw ext4 rootfs image of its own); each bad one is that image with one
edit, made on the host with e2fsprogs' `debugfs` on a copy (no mount, no
root), named after the edit, and cached by what decides it.

Where an edit is impossible (not ext4, no kernel file where the device keeps
it, no shell to run an init script), `DerivationImpossible` says why, and the
scenario that needs that release skips with that reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import EnvironmentMissing, HarnessError
from harness.images.userfiles import sha256_of

EXT_MAGIC_OFFSET = 1024 + 56  # the ext2/3/4 superblock's s_magic
EXT_MAGIC = b"\x53\xef"
# Part of the cache key: bump it when an edit below changes what it produces.
EDITS_VERSION = "3"  # 3: the hang mounts /dev before any redirect
ARTIFACT_INFO = "/etc/mender/artifact_info"
KERNEL_NAMES = ("/boot/Image", "/boot/Image.gz", "/boot/zImage", "/boot/bzImage", "/boot/vmlinuz")
_DEBUGFS_TIMEOUT_S = 60


class DerivationImpossible(HarnessError):
    """This release cannot be derived from the good one; the cause says why."""


@dataclass(frozen=True)
class Conventions:
    """Where the device keeps what the edits touch (the target's YAML may say)."""

    health_dir: str | None = "/etc/health.d"  # None: the device has no drop-in checks
    init: str = "/sbin/init"
    kernel: str | None = None  # None: the first of KERNEL_NAMES the image holds
    shell: str = "/bin/sh"
    version_file: str | None = "/etc/version"  # None: the image keeps no version file


@dataclass(frozen=True)
class Derived:
    """A derived release: its image, the edit made, and the version it reports."""

    kind: str
    path: Path
    version: str
    edit: str
    sha256: str = field(default="")


FAILING_CHECK = """#!/bin/sh
# Derived release: its health check fails, so the update must not commit.
echo "derived release: health check fails on purpose"
exit 1
"""
DYING_INIT = """#!/bin/sh
# Derived release: init exits at once, so the kernel panics.
echo "derived release: init exits on purpose"
exit 1
"""
HANGING_INIT = """#!/bin/sh
# Derived release: userspace hangs. It arms the watchdog, if the kernel has one,
# and never feeds it: only the watchdog can bring the device back.
# No redirect before /dev is mounted: on a read-only root without devtmpfs
# automount, a redirect to /dev/null fails and skips the command it guards.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ -c /dev/null ] || mount -t devtmpfs devtmpfs /dev
echo "derived release: userspace hangs on purpose" > /dev/console
if [ -c /dev/watchdog ]; then exec 3>/dev/watchdog; fi
while :; do sleep 3600; done
"""

KINDS: Mapping[str, str] = {
    "bad": "its health check fails",
    "broken-kernel": "its kernel does not start (the image header zeroed)",
    "panic-init": "its init exits, so the kernel panics",
    "hang": "its userspace hangs (the watchdog armed and never fed)",
}


def derive(
    good: Path, kind: str, base_version: str, cache: Path, conventions: Conventions
) -> Derived:
    """The release `kind` (see KINDS) made from the good release image `good`;
    cached under `cache` by the good image's hash, the kind and the edits' version."""
    if kind not in KINDS:
        raise DerivationImpossible(
            f"no derived release kind '{kind}'", f"use one of: {', '.join(KINDS)}"
        )
    need_tool("debugfs")
    _require_ext(good)
    digest = sha256_of(good)
    key = hashlib.sha256(f"{digest} {kind} {EDITS_VERSION} {conventions}".encode()).hexdigest()[:16]
    out = cache / "derived" / f"{good.stem}-{kind}-{key}.img"
    version = f"{base_version}-{kind}"
    edit = KINDS[kind]
    if out.is_file():
        return Derived(kind, out, version, edit, sha256_of(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ab-derive-") as tmp:
        work = Path(tmp)
        image = work / "release.img"
        shutil.copyfile(good, image)
        _EDITS[kind](image, work, conventions)
        _set_version(image, work, version, conventions.version_file)
        partial = out.with_suffix(".partial")
        shutil.move(image, partial)
        os.replace(partial, out)
    return Derived(kind, out, version, edit, sha256_of(out))


def need_tool(name: str) -> None:
    if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists():
        raise EnvironmentMissing(f"{name} not found", "apt-get install e2fsprogs")


def _debugfs(image: Path, commands: list[str], *, write: bool = True) -> str:
    """Run debugfs commands on `image`; raise naming the command that failed
    (debugfs exits 0 whatever its commands did, so its stderr is read)."""
    tool = shutil.which("debugfs") or "/usr/sbin/debugfs"
    args = [tool, *(["-w"] if write else []), "-f", "-", str(image)]
    done = subprocess.run(
        args,
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=_DEBUGFS_TIMEOUT_S,
        check=False,
    )
    errors = [
        line
        for line in done.stderr.splitlines()
        if line.strip() and not line.startswith("debugfs ") and ": " in line
    ]
    if done.returncode != 0 or errors:
        raise DerivationImpossible(
            f"debugfs on {image.name} failed: {(errors or [done.stderr.strip()])[-1][:200]}",
            "check the release is an intact ext2/3/4 image (e2fsck -n)",
        )
    return done.stdout


def _exists(image: Path, path: str) -> bool:
    out = _debugfs(image, [f"stat {path}"], write=False)
    return "Inode:" in out


def _debugfs_quiet_stat(image: Path, path: str) -> bool:
    """Whether `path` exists (debugfs prints an error for a missing one)."""
    try:
        return _exists(image, path)
    except DerivationImpossible:
        return False


def _replace(image: Path, work: Path, path: str, content: bytes, mode: int = 0o100755) -> None:
    """Write `content` at `path` in the image (replacing a file or a symlink)."""
    local = work / "content"
    local.write_bytes(content)
    commands = []
    if _debugfs_quiet_stat(image, path):
        commands.append(f"rm {path}")
    commands += [f"write {local} {path}", f"sif {path} mode 0{mode:o}"]
    _debugfs(image, commands)


def _require_ext(image: Path) -> None:
    with image.open("rb") as f:
        f.seek(EXT_MAGIC_OFFSET)
        magic = f.read(2)
    if magic != EXT_MAGIC:
        raise DerivationImpossible(
            f"{image.name} is not an ext2/3/4 image, so no release can be derived from it",
            "give the bad releases in the target's releases: instead",
        )


def _require_shell(image: Path, conventions: Conventions) -> None:
    if not _debugfs_quiet_stat(image, conventions.shell):
        raise DerivationImpossible(
            f"the release has no {conventions.shell} to run a derived script",
            "give this bad release in the target's releases: instead",
        )


def _health_fails(image: Path, work: Path, conventions: Conventions) -> None:
    folder = conventions.health_dir
    if folder is None:
        raise DerivationImpossible(
            "the target names no health check folder, so no failing check can be added",
            "set ab-harness.device.health_dir, or give the bad release in releases:",
        )
    _require_shell(image, conventions)
    if not _debugfs_quiet_stat(image, folder):
        _debugfs(image, [f"mkdir {folder}"])
    _replace(image, work, f"{folder}/99-derived-fails", FAILING_CHECK.encode())


def _kernel_path(image: Path, conventions: Conventions) -> str:
    names = (conventions.kernel,) if conventions.kernel else KERNEL_NAMES
    for name in names:
        if name and _debugfs_quiet_stat(image, name):
            return name
    raise DerivationImpossible(
        f"the release keeps no kernel at {' or '.join(n for n in names if n)}",
        "set ab-harness.device.kernel to its path in the rootfs",
    )


def _broken_kernel(image: Path, work: Path, conventions: Conventions) -> None:
    """The kernel file with its first 4 KiB zeroed: the header `booti`/`bootz`
    and the EFI stub check, so the bootloader refuses it however RAM was left."""
    path = _kernel_path(image, conventions)
    local = work / "kernel"
    _debugfs(image, [f"dump {path} {local}"], write=False)
    data = bytearray(local.read_bytes())
    data[:4096] = bytes(min(4096, len(data)))
    _replace(image, work, path, bytes(data), 0o100644)


def _panic_init(image: Path, work: Path, conventions: Conventions) -> None:
    _require_shell(image, conventions)
    _replace(image, work, conventions.init, DYING_INIT.encode())


def _hang(image: Path, work: Path, conventions: Conventions) -> None:
    _require_shell(image, conventions)
    _replace(image, work, conventions.init, HANGING_INIT.encode())


def _set_version(image: Path, work: Path, version: str, version_file: str | None) -> None:
    """The version the derived release reports, where the image keeps one, and
    its Mender artifact name (the good one's, with the kind appended), so the
    client tells the derived release from the good one."""
    if version_file is not None and _debugfs_quiet_stat(image, version_file):
        _replace(image, work, version_file, f"{version}\n".encode(), 0o100644)
    info = read_text(image, ARTIFACT_INFO)
    if info is not None:
        kind = version.split("-", 1)[-1]
        lines = [
            f"{line}-{kind}" if line.startswith("artifact_name=") else line
            for line in info.splitlines()
        ]
        _replace(image, work, ARTIFACT_INFO, ("\n".join(lines) + "\n").encode(), 0o100644)


def read_text(image: Path, path: str) -> str | None:
    """The text of file `path` in the ext image, or None if it has none (read only)."""
    if not _debugfs_quiet_stat(image, path):
        return None
    out = _debugfs(image, [f"cat {path}"], write=False)
    # debugfs echoes each command read from stdin as "debugfs:  CMD".
    return "".join(line for line in out.splitlines(True) if not line.startswith("debugfs:"))


_EDITS = {
    "bad": _health_fails,
    "broken-kernel": _broken_kernel,
    "panic-init": _panic_init,
    "hang": _hang,
}
