"""The releases every U-Boot image ships: v1 in both slots, and the update payloads.

v2 passes its health checks; v2-bad fails one; v2-broken-kernel carries a
kernel U-Boot refuses; v2-panic-init an init that dies; v2-hang a userspace
that hangs, so only the hardware watchdog gets the board back (only where a
kernel drives QEMU's i6300esb). Every image of the same device (the
hardened reference, the stock flavour) ships the same releases, built here,
so a payload means the same thing on both.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagekit import mender
from imagekit.debs import AptRoot, extract
from imagekit.fsimage import mkfs_ext4
from imagekit.kernel import build_kernel
from imagekit.profile import ArchProfile
from imagekit.rootfs import SSH_PACKAGES, SlotLayout, build_initramfs, build_rootfs_tree

FAILING_APP_CHECK = """#!/bin/sh
# v2-bad: the application this release ships does not come up.
echo "app service did not start (v2-bad payload)"
exit 1
"""

HANGING_APP = """#!/bin/sh
# v2-hang: this release's application hangs the whole userspace: every
# process stops, the watchdog daemon with them, and nothing feeds the
# watchdog any more. Only the hardware watchdog can get the device back.
# (Straight to the console: the health runner prints a check's output only
# once the check ends, and this one never does.)
if [ ! -c /dev/watchdog ]; then
  echo "ab-app: v2-hang: no /dev/watchdog, nothing would recover this hang" > /dev/console
  exit 1
fi
echo "ab-app: v2-hang: userspace hangs now (watchdog fed by pid $(cat /run/watchdog.pid))" \
  > /dev/console
kill -STOP -1
kill -STOP $$
"""

DYING_INIT = """#!/bin/sh
# v2-panic-init: this release's init dies at once, so the kernel panics.
echo "ab-init: v2-panic-init: init exits"
exit 1
"""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def gzip_kernel(kernel: Path, out: Path) -> None:
    """gzip with no name and mtime 0, so the slot image is reproducible."""
    with kernel.open("rb") as src, gzip.GzipFile(out, "wb", compresslevel=6, mtime=0) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def broken_kernel(kernel: Path, out: Path) -> None:
    """A kernel U-Boot refuses: its first 4 KiB zeroed, which holds the magic
    `booti` (arm64 Image, at 0x38) and `bootz` (zImage, at 0x24) check, so it
    fails however RAM was left by the last boot (a reset does not clear RAM:
    a half-written kernel could still run)."""
    data = bytearray(kernel.read_bytes())
    data[:4096] = bytes(4096)
    out.write_bytes(bytes(data))


def fetch_packages(
    profile: ArchProfile,
    apt: AptRoot,
    pool: Path,
    staging: Path,
    watchdog_staging: Path,
    client_staging: Path | None = None,
) -> dict[str, str]:
    """Unpack the packages into `staging`, and the watchdog kernel (the v2-hang
    payload's, if the profile has one) apart, in `watchdog_staging`, so the
    two kernels never mix. apt state and .debs are kept per architecture:
    packages of two architectures share names."""
    kernel = apt.resolve(profile.kernel_package) if profile.kernel_package else None
    names = ["busybox-static", "libubootenv-tool", "libubootenv0.1", "libc6", "zlib1g"]
    if profile.ssh:
        names += SSH_PACKAGES
    watchdog_kernel = apt.resolve(profile.watchdog.package) if profile.watchdog else None
    extra = [k for k in (kernel, watchdog_kernel) if k]
    debs = apt.download([*names, *extra], pool)
    for name, deb in debs.items():
        extract(deb, watchdog_staging if name == watchdog_kernel else staging)
    found = {name: deb.name for name, deb in sorted(debs.items())}
    if client_staging is not None:
        found.update(mender.fetch(apt, pool, client_staging))
    return found


@dataclass(frozen=True)
class SlotKernel:
    """The kernel every release carries, the files of a slot's /boot, and
    whether that kernel drives QEMU's i6300esb watchdog (then v2-hang uses it)."""

    image: Path
    boot: dict[str, Path]
    drives_watchdog: bool
    description: str


def slot_kernel(
    profile: ArchProfile, apt: AptRoot, pool: Path, pkgs: Path, work: Path
) -> SlotKernel:
    if profile.kernel_build is not None:
        cache = pool.parent.parent / "kernels"
        built = build_kernel(profile.kernel_build, apt, pool, cache)
        return SlotKernel(
            built.image,
            {profile.kernel: built.image},
            built.enabled("I6300ESB_WDT"),
            f"{profile.kernel_build.source_package} built as {built.image.parent.name}",
        )
    kernel = next((pkgs / "boot").glob("vmlinuz-*"))
    initrd = build_initramfs(pkgs, work, profile.initramfs_modules)
    return SlotKernel(kernel, {profile.kernel: kernel, "initrd.gz": initrd}, False, kernel.name)


# release -> (version, extra files, /boot files, kernel tree of its modules or None)
Release = tuple[str, dict[str, str], dict[str, Path], Path | None]


def releases(
    profile: ArchProfile, pkgs: Path, generic: Path, work: Path, kernel: SlotKernel
) -> dict[str, Release]:
    """Every release an image ships: v1 (both slots) and the update payloads."""
    boot = kernel.boot
    bad_kernel = work / f"{profile.kernel}-broken"
    broken_kernel(kernel.image, bad_kernel)
    trees: dict[str, Release] = {
        "v1": ("1", {}, boot, None),
        "v2": ("2", {}, boot, None),
        # The crash sweep records v3 over a committed v2 (a release name exists before the update).
        "v3": ("3", {}, boot, None),
        "v2-bad": ("2-bad", {"etc/health.d/50-app": FAILING_APP_CHECK}, boot, None),
        "v2-broken-kernel": ("2-broken-kernel", {}, {**boot, profile.kernel: bad_kernel}, None),
        "v2-panic-init": ("2-panic-init", {"sbin/init": DYING_INIT}, boot, None),
    }
    if kernel.drives_watchdog:
        trees["v2-hang"] = ("2-hang", {"etc/health.d/50-app": HANGING_APP}, boot, None)
    elif profile.watchdog is not None:
        # The kernel whose modules v2-hang carries: its own, not the slot's.
        initrd = build_initramfs(
            pkgs, work, profile.watchdog.initramfs_modules, generic, "initrd-watchdog"
        )
        kernel_gz = work / f"{profile.kernel}-watchdog.gz"
        gzip_kernel(next((generic / "boot").glob("vmlinuz-*")), kernel_gz)
        watchdog_boot = {f"{profile.kernel}.gz": kernel_gz, "initrd.gz": initrd}
        trees["v2-hang"] = ("2-hang", {"etc/health.d/50-app": HANGING_APP}, watchdog_boot, generic)
    return trees


def build_release_images(
    profile: ArchProfile,
    pkgs: Path,
    work: Path,
    trees: dict[str, Release],
    layout: SlotLayout,
    fs_mib: int,
    progress: Any = print,
) -> dict[str, Path]:
    """An ext4 image of `fs_mib` per release, each slot tree laid out by `layout`."""
    images: dict[str, Path] = {}
    for release, (version, extra, boot_files, kernel_tree) in trees.items():
        tree = work / f"rootfs-{release}"
        build_rootfs_tree(
            profile, pkgs, tree, layout, version, extra, boot_files, kernel_tree, release
        )
        progress(f"making ext4 image for rootfs {release}")
        images[release] = work / f"rootfs-{release}.img"
        mkfs_ext4(tree, images[release], fs_mib, f"rootfs-{release}")
    return images


def build_data_image(work: Path, size_mib: int, mender_device_type: str | None) -> Path:
    """The data partition: a README, and the Mender client's state folder in
    the Mender flavour."""
    data_tree = work / "data-tree"
    data_tree.mkdir()
    (data_tree / "README").write_text("ab-harness data partition: survives updates and rollbacks\n")
    if mender_device_type is not None:
        mender.data_files(data_tree, mender_device_type)
    data_img = work / "data.img"
    mkfs_ext4(data_tree, data_img, size_mib, "data", journal=True)
    return data_img


def write_payloads(
    out: Path, images: dict[str, Path], trees: dict[str, Release]
) -> dict[str, dict[str, str]]:
    """Copy every payload (each release but v1) into `out`; their manifest entries."""
    entries = {}
    for release in trees:
        if release == "v1":
            continue
        name = f"rootfs-{release}.img"
        shutil.copy2(images[release], out / name)
        entries[release] = {
            "file": name,
            "sha256": sha256(out / name),
            "version": trees[release][0],
        }
    return entries
