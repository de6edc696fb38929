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
import json
import logging
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from imagekit import mender  # noqa: E402
from imagekit.debs import AptRoot  # noqa: E402
from imagekit.fsimage import (  # noqa: E402
    BUILD_EPOCH,
    PartitionSpec,
    assemble_disk,
    mkfs_vfat,
)
from imagekit.profile import ArchProfile, load_profile  # noqa: E402
from imagekit.releases import (  # noqa: E402
    DYING_INIT,
    FAILING_APP_CHECK,
    build_data_image,
    build_release_images,
    fetch_packages,
    releases,
    sha256,
    slot_kernel,
    write_payloads,
)
from imagekit.rootfs import VIRTIO, SlotLayout, build_initramfs, busybox_applets  # noqa: E402
from imagekit.run import BuildError, run  # noqa: E402

# What qemu-images/x86_64-grub takes from this recipe, kept importable from it.
__all__ = ["DYING_INIT", "FAILING_APP_CHECK", "build_initramfs", "busybox_applets", "sha256"]

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


def fw_env_config() -> str:
    """libubootenv's config: the env files this image keeps (one or two copies)."""
    template = HERE / "rootfs" / "etc" / "fw_env.config"
    lines = template.read_text().replace("@ENV_SIZE@", hex(ENV_SIZE)).splitlines(keepends=True)
    wanted = tuple(f"/{name}" for name in env_files())
    return "".join(
        line for line in lines if line.startswith("#") or line.split()[0].endswith(wanted)
    )


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
    if profile.kernel_build is not None:
        step(2, "kernel from Debian's source, built in (cached; the first build takes minutes)")
    else:
        step(2, "initramfs (busybox + the kernel's virtio/vfat modules)")
    kernel = slot_kernel(profile, apt, pool, pkgs, work)
    trees = releases(profile, pkgs, generic, work, kernel)
    step(3, f"building rootfs trees {', '.join(trees)}")
    layout = SlotLayout(VIRTIO, fw_env_config(), client_staging)
    images = build_release_images(
        profile, pkgs, work, trees, layout, FS_MIB, lambda what: step(4, what)
    )
    data_img = build_data_image(work, DATA_MIB, name if client_staging is not None else None)

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
    payloads = write_payloads(out, images, trees)

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
        "kernel": kernel.description,
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
        "payloads": payloads,
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
