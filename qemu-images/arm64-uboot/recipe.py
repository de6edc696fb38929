"""Reference image: QEMU `virt` + U-Boot, two rootfs slots, Mender's env contract.

Usage: python recipe.py --out DIR [--debs DIR] [--profile TOML] [--name NAME]

The architecture comes from a profile (imagekit.profile): this folder's
profile.toml (arm64) unless --profile names another, as qemu-images/arm-uboot
does for 32-bit ARM. Everything else is the same on every architecture.

Outputs in DIR (described by manifest.json):
  disk.img            FAT boot (boot.scr, saveenv.scr, two env copies),
                      rootfs A (v1), rootfs B (v1), data; each slot carries
                      its own kernel and initrd in /boot, as Mender's do
  u-boot.bin          Debian's U-Boot for the profile's machine (-bios)
  factory-env.pflash  read-only env in pflash bank 1: bootdelay=0 and bootcmd
  rootfs-v2.img       update payload whose health checks pass
  rootfs-v3.img       a second good release, installed over a committed v2
  rootfs-v2-bad.img   update payload whose health check fails
  rootfs-v2-broken-kernel.img  update payload whose kernel cannot be loaded
  rootfs-v2-panic-init.img     update payload whose init dies (kernel panic)
  rootfs-v2-hang.img  update payload whose userspace hangs; it carries the
                      profile's watchdog kernel (arm64: Debian's generic one,
                      whose i6300esb driver the cloud kernel lacks), so QEMU's
                      watchdog resets the board. Only for a profile with one.
Everything is built from Debian packages, without root mounts or loop devices.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from imagekit import mender  # noqa: E402
from imagekit.debs import AptRoot, extract  # noqa: E402
from imagekit.fsimage import (  # noqa: E402
    BUILD_EPOCH,
    PartitionSpec,
    assemble_disk,
    mkfs_ext4,
    mkfs_vfat,
)
from imagekit.initramfs import pack_cpio  # noqa: E402
from imagekit.kernel import build_kernel  # noqa: E402
from imagekit.profile import ArchProfile, load_profile  # noqa: E402
from imagekit.run import BuildError, run  # noqa: E402

log = logging.getLogger("recipe.arm64-uboot")

ENV_SIZE = 0x4000
REDUNDANT_FILES = ("uboot.env", "uboot-redund.env")
# The env layout: 2 redundant copies (the reference design), or 1 copy (the
# arm64-uboot-single-env variant, built to show what the sweep finds in it).
ENV_COPIES = 2
# The update client in the image: the shell agent only ("ab-update"), or the
# real Mender client beside it ("mender", the image flavour imagekit.mender
# describes; built as <recipe>-mender, with larger slots for its 23 MB).
CLIENT = "ab-update"
# Slot and filesystem sizes (MiB) of the Mender flavour.
MENDER_SLOT_MIB = 64
MENDER_FS_MIB = 60
SLOT_DEVICES = {"A": "/dev/vda2", "B": "/dev/vda3"}


def env_files() -> tuple[str, ...]:
    return REDUNDANT_FILES[:ENV_COPIES]


PFLASH_BANK_BYTES = 64 * 1024 * 1024
# A slot partition is larger than the filesystem a payload carries: the
# payload (and so every install's write and hash) is FS_MIB, and the slot
# leaves room for bigger releases. The arm64 kernel in a slot is an
# uncompressed Image (26 MiB): U-Boot reads it in a few ms, where unpacking a
# gzip'ed one (or an LZ4 one, no faster here) took 0.5 s of every boot under TCG.
SLOT_MIB = 40
FS_MIB = 34
BOOT_MIB = 16
DATA_MIB = 16
# Load addresses used by boot.scr and saveenv.scr (the kernel and initrd
# addresses come from the factory env). 512 MiB of RAM start at 0x40000000.
SCRIPT_ADDRS = {
    "ENV_A": 0x46000000,
    "ENV_B": 0x46100000,
    "ENV_OUT": 0x46200000,
    "CRCBUF": 0x46300000,
    "STATE_FLAG": 0x46400000,
    "STATE_COPY": 0x46400001,
    "SAVE_SCR": 0x46500000,
    "ZIP_ADDR": 0x48000000,
    "KERNEL_MAX": 0x3C00000,
}
# Mender's default env. No mender_saveenv_canary: as on a Mender device,
# U-Boot sets it on the first boot and saves, which proves its saves work.
INITIAL_ENV = {
    "mender_boot_part": "2",
    "mender_boot_part_hex": "2",
    "upgrade_available": "0",
    "bootcount": "0",
    "bootlimit": "1",
}
STEPS = 8


def step(n: int, what: str) -> None:
    print(f"[{n}/{STEPS}] {what}", flush=True)


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
    shutil.copy2(HERE / "initramfs" / "init", tree / "init")
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


def busybox_applets() -> list[str]:
    # The host's busybox-static is the same Debian build as the guest's, so its
    # applet list is the guest's; the guest's binary cannot run on the host.
    out = run(["busybox", "--list-full"]).decode()
    return [line.strip() for line in out.splitlines() if line.strip()]


def build_rootfs_tree(
    profile: ArchProfile,
    pkgs: Path,
    tree: Path,
    version: str,
    extra_files: dict[str, str],
    boot_files: dict[str, Path],
    kernel_tree: Path | None = None,
    client_staging: Path | None = None,
    release: str = "v1",
) -> None:
    """A slot's rootfs; `kernel_tree` holds the slot kernel's modules (default `pkgs`)."""
    shutil.copytree(HERE / "rootfs", tree, symlinks=True)
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
    config = tree / "etc" / "fw_env.config"
    lines = config.read_text().replace("@ENV_SIZE@", hex(ENV_SIZE)).splitlines(keepends=True)
    wanted = tuple(f"/{name}" for name in env_files())
    kept = [line for line in lines if line.startswith("#") or line.split()[0].endswith(wanted)]
    config.write_text("".join(kept))
    (tree / "etc" / "version").write_text(version + "\n")
    (tree / "etc" / "slot").symlink_to("/run/slot")
    for name, src in boot_files.items():
        shutil.copy2(src, tree / "boot" / name)
    copy_network_modules(profile.network_modules, kernel_tree or pkgs, tree)
    if profile.ssh:
        copy_ssh_server(profile, pkgs, tree)
    if client_staging is not None:
        mender.install(
            client_staging, tree, profile.multiarch, SLOT_DEVICES, mender.artifact_name(release)
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


def write_env_files(work: Path) -> dict[str, Path]:
    text = work / "initial-env.txt"
    text.write_text("".join(f"{k}={v}\n" for k, v in INITIAL_ENV.items()))
    files = env_files()
    first = work / files[0]
    redundant = ["-r"] if ENV_COPIES == 2 else []
    run(["mkenvimage", *redundant, "-s", str(ENV_SIZE), "-o", first, text])
    if ENV_COPIES == 1:
        return {files[0]: first}
    # The second copy is the same env with an older flags byte, so both copies
    # are valid from the start and the first one wins.
    blob = bytearray(first.read_bytes())
    blob[4] = (blob[4] - 1) % 256
    second = work / files[1]
    second.write_bytes(bytes(blob))
    return {files[0]: first, files[1]: second}


def script_values(profile: ArchProfile) -> dict[str, int | str]:
    """Every @NAME@ the U-Boot scripts use, with its value (numbers in hex)."""
    values: dict[str, int | str] = dict(SCRIPT_ADDRS)
    values["KERNEL"] = profile.kernel
    values["BOOT_CMD"] = profile.boot_command
    values["COPY_IDS"] = "a b" if ENV_COPIES == 2 else "a"
    header = 5 if ENV_COPIES == 2 else 4  # crc32 (+ flags byte when redundant)
    values["COPIES"] = ENV_COPIES
    values["HDR"] = header
    values["ENV_SIZE"] = ENV_SIZE
    values["ENV_DATA_SIZE"] = ENV_SIZE - header
    values["ENV_OUT_DATA"] = SCRIPT_ADDRS["ENV_OUT"] + header
    values["ENV_OUT_FLAGS"] = SCRIPT_ADDRS["ENV_OUT"] + 4
    return values


def write_uboot_script(
    profile: ArchProfile, work: Path, name: str, text: str | None = None
) -> Path:
    """mkimage a U-Boot script from NAME.cmd (or `text`), its @NAME@ values filled in."""
    text = (HERE / f"{name}.cmd").read_text() if text is None else text
    for key, value in script_values(profile).items():
        text = text.replace(f"@{key}@", hex(value) if isinstance(value, int) else value)
    if "@" in text.replace("pl011@", ""):
        raise RuntimeError(f"{name}.cmd: unreplaced @NAME@ left: {text[text.index('@') :][:40]}")
    source = work / f"{name}.cmd"
    source.write_text(text)
    out = work / f"{name}.scr"
    run(
        [
            "mkimage",
            "-q",
            "-A",
            profile.mkimage_arch,
            "-O",
            "linux",
            "-T",
            "script",
            "-C",
            "none",
            "-n",
            f"ab-harness {name}",
            "-d",
            source,
            out,
        ],
        # mkimage stamps the header with the build time unless told otherwise.
        env=dict(os.environ, SOURCE_DATE_EPOCH=str(BUILD_EPOCH)),
    )
    return out


def write_factory_env(profile: ArchProfile, work: Path, out: Path) -> None:
    env = work / "factory-env.bin"
    run(["mkenvimage", "-s", str(profile.factory_env_size), "-o", env, HERE / "factory-env.txt"])
    with out.open("wb") as f:
        f.write(env.read_bytes())
        f.truncate(PFLASH_BANK_BYTES)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


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


def slot_kernel(
    profile: ArchProfile, apt: AptRoot, pool: Path, pkgs: Path, work: Path
) -> tuple[Path, dict[str, Path], bool]:
    """The kernel every release carries, the files of a slot's /boot, and
    whether that kernel drives QEMU's i6300esb watchdog (then v2-hang uses it)."""
    if profile.kernel_build is not None:
        step(2, "kernel from Debian's source, built in (cached; the first build takes minutes)")
        cache = pool.parent.parent / "kernels"
        built = build_kernel(profile.kernel_build, apt, pool, cache)
        return built.image, {profile.kernel: built.image}, built.enabled("I6300ESB_WDT")
    step(2, "initramfs (busybox + the kernel's virtio/vfat modules)")
    kernel = next((pkgs / "boot").glob("vmlinuz-*"))
    initrd = build_initramfs(pkgs, work, profile.initramfs_modules)
    return kernel, {profile.kernel: kernel, "initrd.gz": initrd}, False


def build_data_image(work: Path, mender_device_type: str | None) -> Path:
    """The data partition: a README, and the Mender client's state folder in
    the Mender flavour."""
    data_tree = work / "data-tree"
    data_tree.mkdir()
    (data_tree / "README").write_text("ab-harness data partition: survives updates and rollbacks\n")
    if mender_device_type is not None:
        mender.data_files(data_tree, mender_device_type)
    data_img = work / "data.img"
    mkfs_ext4(data_tree, data_img, DATA_MIB, "data", journal=True)
    return data_img


def build(out: Path, debs_dir: Path, profile: ArchProfile, name: str = "arm64-uboot") -> None:
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pkgs = work / "pkgs"

    generic = work / "pkgs-watchdog"

    client_staging = work / "pkgs-mender" if CLIENT == "mender" else None
    step(1, f"fetching Debian {profile.arch} packages (kernel, busybox-static, libubootenv)")
    apt = AptRoot(profile.arch, debs_dir / f"apt-{profile.arch}")
    apt.prepare()
    pool = debs_dir / f"pool-{profile.arch}"
    packages = fetch_packages(profile, apt, pool, pkgs, generic, client_staging)
    kernel, boot, kernel_drives_watchdog = slot_kernel(profile, apt, pool, pkgs, work)
    bad_kernel = work / f"{profile.kernel}-broken"
    broken_kernel(kernel, bad_kernel)
    trees: dict[str, tuple[str, dict[str, str], dict[str, Path]]] = {
        "v1": ("1", {}, boot),
        "v2": ("2", {}, boot),
        "v3": ("3", {}, boot),
        "v2-bad": ("2-bad", {"etc/health.d/50-app": FAILING_APP_CHECK}, boot),
        "v2-broken-kernel": ("2-broken-kernel", {}, {**boot, profile.kernel: bad_kernel}),
        "v2-panic-init": ("2-panic-init", {"sbin/init": DYING_INIT}, boot),
    }
    if kernel_drives_watchdog:
        trees["v2-hang"] = ("2-hang", {"etc/health.d/50-app": HANGING_APP}, boot)
    elif profile.watchdog is not None:
        watchdog_initrd = build_initramfs(
            pkgs, work, profile.watchdog.initramfs_modules, generic, "initrd-watchdog"
        )
        watchdog_kernel_gz = work / f"{profile.kernel}-watchdog.gz"
        gzip_kernel(next((generic / "boot").glob("vmlinuz-*")), watchdog_kernel_gz)
        watchdog_boot = {f"{profile.kernel}.gz": watchdog_kernel_gz, "initrd.gz": watchdog_initrd}
        trees["v2-hang"] = ("2-hang", {"etc/health.d/50-app": HANGING_APP}, watchdog_boot)
    step(3, f"building rootfs trees {', '.join(trees)}")
    images: dict[str, Path] = {}
    for release, (version, extra, boot_files) in trees.items():
        tree = work / f"rootfs-{release}"
        # The kernel whose modules a release carries: v2-hang's own, when it is not the slot's.
        build_rootfs_tree(
            profile, pkgs, tree, version, extra, boot_files,
            generic if release == "v2-hang" and not kernel_drives_watchdog else None,
            client_staging, release,
        )  # fmt: skip
        step(4, f"making ext4 image for rootfs {release}")
        images[release] = work / f"rootfs-{release}.img"
        mkfs_ext4(tree, images[release], FS_MIB, f"rootfs-{release}")
    data_img = build_data_image(work, name if client_staging is not None else None)

    step(5, "building boot partition (boot.scr, saveenv.scr, env copies)")
    env_blobs = write_env_files(work)
    boot_files = {
        "boot.scr": write_uboot_script(profile, work, "boot"),
        "saveenv.scr": write_uboot_script(profile, work, "saveenv"),
        **env_blobs,
    }
    boot_img = work / "boot.img"
    mkfs_vfat(boot_img, BOOT_MIB, "BOOT", boot_files)

    step(6, "assembling disk.img (boot, rootfs A, rootfs B, data)")
    table = assemble_disk(
        out / "disk.img",
        [
            PartitionSpec("boot", boot_img, BOOT_MIB, "c"),
            PartitionSpec("rootfs-a", images["v1"], SLOT_MIB, "83"),
            PartitionSpec("rootfs-b", images["v1"], SLOT_MIB, "83"),
            PartitionSpec("data", data_img, DATA_MIB, "83"),
        ],
    )

    step(7, "writing u-boot.bin, factory env pflash and update payloads")
    shutil.copy2(profile.uboot, out / "u-boot.bin")
    write_factory_env(profile, work, out / "factory-env.pflash")
    payload_names = [release for release in trees if release != "v1"]
    for release in payload_names:
        shutil.copy2(images[release], out / f"rootfs-{release}.img")

    step(8, "writing manifest.json")
    manifest = {
        "name": name,
        "arch": profile.arch,
        "qemu": {
            "system": profile.qemu.system,
            "machine": profile.qemu.machine,
            "cpu": profile.qemu.cpu,
        },
        "packages": packages,
        "kernel": kernel.name
        if profile.kernel_build is None
        else f"{profile.kernel_build.source_package} built as {kernel.parent.name}",
        "partitions": table,
        "slots": {"A": 2, "B": 3},
        "boot_partition": 1,
        "data_partition": 4,
        "env": {
            "size": ENV_SIZE,
            "files": list(env_files()),
            "partition": 1,
            "initial": INITIAL_ENV,
        },
        "files": {
            "disk": "disk.img",
            "bios": "u-boot.bin",
            "factory_env": "factory-env.pflash",
        },
        "payloads": {
            release: {
                "file": f"rootfs-{release}.img",
                "sha256": sha256(out / f"rootfs-{release}.img"),
                "version": trees[release][0],
            }
            for release in payload_names
        },
        "slot_image_sha256": sha256(images["v1"]),
        "client": CLIENT,
    }
    if client_staging is not None:
        manifest["mender"] = {
            "device_type": name,
            "artifact_names": {release: mender.artifact_name(release) for release in trees},
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--debs", type=Path, help="where downloaded .debs are kept between builds")
    parser.add_argument("--env-copies", type=int, choices=(1, 2), default=2)
    parser.add_argument("--name", default="arm64-uboot")
    parser.add_argument("--client", choices=("ab-update", "mender"), default="ab-update")
    parser.add_argument(
        "--profile",
        type=Path,
        default=HERE / "profile.toml",
        help="architecture profile (default: this folder's, arm64)",
    )
    args = parser.parse_args()
    global ENV_COPIES, CLIENT, SLOT_MIB, FS_MIB  # noqa: PLW0603 - one build per process
    ENV_COPIES = args.env_copies
    CLIENT = args.client
    if CLIENT == "mender":
        SLOT_MIB, FS_MIB = MENDER_SLOT_MIB, MENDER_FS_MIB
        # meta-mender's default env asks the client to check that U-Boot's
        # own saves reach the env Linux reads (mender_saveenv_canary).
        INITIAL_ENV["mender_check_saveenv_canary"] = "1"
    logging.basicConfig(level=logging.INFO, format="    %(message)s")
    try:
        profile = load_profile(args.profile)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not profile.uboot.exists():
        print(f"error: {profile.uboot} missing — fix: apt-get install u-boot-qemu", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        build(args.out, args.debs or args.out / "debs", profile, args.name)
    except (BuildError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    os.sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
