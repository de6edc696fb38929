"""A slot's root filesystem tree, shared by the U-Boot images (reference and stock).

The tree is `qemu-images/arm64-uboot/rootfs/` (init, health checks, the
update agent, libubootenv's config) plus busybox, the C library, the env
tools, optionally an SSH server and the Mender client. What differs between
two images of the same device is data, given by the recipe: how Linux names
the boot disk's partitions (`DiskNames`: a virtio disk's `vda2` or an SD
card's `mmcblk0p2`, written to /etc/ab-disk.conf, which rcS and ab-update
read) and where libubootenv finds the env (`fw_env_config`).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imagekit import mender
from imagekit.initramfs import pack_cpio
from imagekit.profile import ArchProfile
from imagekit.run import run

# The rootfs template every U-Boot image starts from.
TEMPLATE = Path(__file__).resolve().parent.parent / "arm64-uboot" / "rootfs"
INITRAMFS_INIT = TEMPLATE.parent / "initramfs" / "init"
DISK_CONF = "etc/ab-disk.conf"


@dataclass(frozen=True)
class DiskNames:
    """How Linux names the boot disk and its partitions (`/dev/<disk><prefix>N`)."""

    disk: str  # "vda" (virtio-blk), "mmcblk0" (SD card / eMMC)
    partition_prefix: str = ""  # "p" where the disk name ends in a digit

    def partition(self, number: int) -> str:
        return f"/dev/{self.disk}{self.partition_prefix}{number}"

    @property
    def device(self) -> str:
        return f"/dev/{self.disk}"

    def slot_devices(self, slots: Mapping[str, int]) -> dict[str, str]:
        return {name: self.partition(number) for name, number in slots.items()}

    def conf(self) -> str:
        """/etc/ab-disk.conf: sourced by rcS and ab-update (`${PART}N` is partition N)."""
        return (
            "# How Linux names the boot disk's partitions: /dev/${PART}N (from the recipe).\n"
            f"PART={self.disk}{self.partition_prefix}\n"
        )


VIRTIO = DiskNames("vda")
SD_CARD = DiskNames("mmcblk0", "p")
SLOTS = {"A": 2, "B": 3}


def busybox_applets() -> list[str]:
    # The host's busybox-static is the same Debian build as the guest's, so its
    # applet list is the guest's; the guest's binary cannot run on the host.
    out = run(["busybox", "--list-full"]).decode()
    return [line.strip() for line in out.splitlines() if line.strip()]


def build_initramfs(
    pkgs: Path,
    work: Path,
    modules: tuple[str, ...],
    kernel_tree: Path | None = None,
    name: str = "initrd",
) -> Path:
    """busybox, /init and the kernel modules (from `kernel_tree`, default
    `pkgs`) that mounting the root needs, loaded in the listed order."""
    tree = work / name
    (tree / "bin").mkdir(parents=True)
    (tree / "etc").mkdir()
    (tree / "lib" / "modules").mkdir(parents=True)
    shutil.copy2(pkgs / "bin" / "busybox", tree / "bin" / "busybox")
    shutil.copy2(INITRAMFS_INIT, tree / "init")
    modroot = next(((kernel_tree or pkgs) / "lib" / "modules").iterdir())
    by_name = {p.name.removesuffix(".ko"): p for p in modroot.rglob("*.ko")}
    for module in modules:
        if module not in by_name:
            raise RuntimeError(f"kernel module {module}.ko not found in {modroot}")
        shutil.copy2(by_name[module], tree / "lib" / "modules" / f"{module}.ko")
    (tree / "etc" / "modules.order").write_text("\n".join(modules) + "\n")
    out = work / f"{name}.gz"
    pack_cpio(tree, out)
    return out


@dataclass(frozen=True)
class SlotLayout:
    """What a recipe decides about every slot tree it builds."""

    disk: DiskNames
    fw_env_config: str  # /etc/fw_env.config, rendered
    client_staging: Path | None = None  # the Mender client's unpacked packages, if any


def build_rootfs_tree(
    profile: ArchProfile,
    pkgs: Path,
    tree: Path,
    layout: SlotLayout,
    version: str,
    extra_files: dict[str, str],
    boot_files: dict[str, Path],
    kernel_tree: Path | None = None,
    release: str = "v1",
) -> None:
    """A slot's rootfs; `kernel_tree` holds the slot kernel's modules (default `pkgs`)."""
    shutil.copytree(TEMPLATE, tree, symlinks=True)
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "boot",
        "uboot",
        "data",
        "root",
        f"lib/{profile.multiarch}",
        f"usr/lib/{profile.multiarch}",
    ):
        (tree / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(pkgs / "bin" / "busybox", tree / "bin" / "busybox")
    for applet in busybox_applets():
        link = tree / applet
        if applet == "bin/busybox" or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    for lib in profile.guest_libs:
        shutil.copy2(pkgs / lib, tree / lib)
    # Absolute loader path: a relative ld-linux symlink breaks the dynamic tools.
    (tree / "lib" / profile.loader).symlink_to(f"/lib/{profile.multiarch}/{profile.loader}")
    (tree / f"lib/{profile.multiarch}/libz.so.1").symlink_to("libz.so.1.2.13")
    (tree / f"usr/lib/{profile.multiarch}/libubootenv.so.0").symlink_to("libubootenv.so.0.3.2")
    for tool in ("fw_printenv", "fw_setenv"):
        shutil.copy2(pkgs / "usr" / "bin" / tool, tree / "usr" / "bin" / tool)
    (tree / "etc" / "fw_env.config").write_text(layout.fw_env_config)
    (tree / DISK_CONF).write_text(layout.disk.conf())
    (tree / "etc" / "version").write_text(version + "\n")
    (tree / "etc" / "slot").symlink_to("/run/slot")
    for name, src in boot_files.items():
        shutil.copy2(src, tree / "boot" / name)
    copy_network_modules(profile.network_modules, kernel_tree or pkgs, tree)
    if profile.ssh:
        copy_ssh_server(profile, pkgs, tree)
    if layout.client_staging is not None:
        mender.install(
            layout.client_staging,
            tree,
            profile.multiarch,
            layout.disk.slot_devices(SLOTS),
            mender.artifact_name(release),
        )
    for rel, content in extra_files.items():
        path = tree / rel
        path.unlink(missing_ok=True)  # e.g. the sbin/init symlink a payload replaces
        path.write_text(content)
        path.chmod(0o755)


NET_MODULES_DIR = "lib/modules/net"
# An SSH server for targets that deliver over SSH (labgrid's SSHDriver): Debian's
# dropbear with the libraries it links, and OpenSSH's sftp-server where dropbear
# looks for it, because OpenSSH 9's scp (labgrid's `put`) speaks SFTP. rcS starts
# it only when the machine has a NIC, so the default boot runs none of it.
SSH_PACKAGES = [
    "dropbear-bin",
    "libtomcrypt1",
    "libtommath1",
    "libgmp10",
    "libcrypt1",
    "openssh-sftp-server",
]
SSH_LIBS = (
    "usr/lib/{m}/libtomcrypt.so.1*",
    "usr/lib/{m}/libtommath.so.1*",
    "usr/lib/{m}/libgmp.so.10*",
    "lib/{m}/libcrypt.so.1*",
)
HOST_KEY = "etc/dropbear/dropbear_ed25519_host_key"


def copy_ssh_server(profile: ArchProfile, pkgs: Path, tree: Path) -> None:
    """dropbear, its libraries, sftp-server and the image's host key into a slot;
    root's ~/.ssh is /run/ssh, where the harness writes the key of its run."""
    shutil.copy2(pkgs / "usr/sbin/dropbear", tree / "usr/sbin/dropbear")
    for pattern in SSH_LIBS:
        rel = pattern.format(m=profile.multiarch)
        found = sorted(pkgs.glob(rel))
        if not found:
            raise RuntimeError(f"no {rel} in the unpacked packages")
        for lib in found:
            dest = tree / lib.relative_to(pkgs)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(lib, dest, follow_symlinks=False)
    (tree / "usr/lib").mkdir(parents=True, exist_ok=True)
    shutil.copy2(pkgs / "usr/lib/openssh/sftp-server", tree / "usr/lib/sftp-server")
    key = pkgs.parent / "ssh-host-key"
    if not key.exists():  # one key per image, so both slots answer with the same one
        run(["dropbearkey", "-t", "ed25519", "-f", key])
    (tree / HOST_KEY).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(key, tree / HOST_KEY)
    (tree / HOST_KEY).chmod(0o600)
    (tree / "root/.ssh").symlink_to("/run/ssh")


def copy_network_modules(modules: tuple[str, ...], kernel_tree: Path, tree: Path) -> None:
    """The NIC's modules of the slot's own kernel, with their load order, in
    /lib/modules/net: rcS loads them only when the machine has a virtio NIC."""
    if not modules:
        return
    modroot = next((kernel_tree / "lib" / "modules").iterdir())
    by_name = {p.name.removesuffix(".ko"): p for p in modroot.rglob("*.ko")}
    dest = tree / NET_MODULES_DIR
    dest.mkdir(parents=True, exist_ok=True)
    for module in modules:
        if module not in by_name:
            raise RuntimeError(f"kernel module {module}.ko not found in {modroot}")
        shutil.copy2(by_name[module], dest / f"{module}.ko")
    (dest / "order").write_text("\n".join(modules) + "\n")
