"""Stock image: the arm64 reference device as a Mender board ships it.

Usage: python recipe.py --out DIR [--debs DIR] [--name NAME]

The same device as qemu-images/arm64-uboot (profile, kernel, releases,
payloads, rootfs), with what a Mender user's board runs in place of the
reference's hardened design:
- U-Boot 2023.01 built from Debian's source with CONFIG_BOOTCOUNT_LIMIT,
  CONFIG_BOOTCOUNT_ENV and a redundant env at raw offsets 0x400000 and
  0x800000 of an SD card (imagekit/uboot.py; uboot.config). Its compiled-in
  default env (uboot-env.txt) holds Mender's chain as variables; no boot
  script exists, U-Boot's own C code counts, saves and falls back.
- Debian's mender-client 3.4, unchanged, with no state script of ours; the
  boot-time health runner commits with one `mender commit`.
- Linux sees the card as /dev/mmcblk0: rcS, ab-update and the client's
  RootfsPartA/B name /dev/mmcblk0pN, libubootenv reads the raw offsets.

The env copies: both written with `mkenvimage -r` from the compiled-in
default env, as meta-mender's image does (it `dd`s one uboot.env, made
from U-Boot's default env, to both offsets). So Linux reads a valid env
from the first boot on, and U-Boot's first boot loads it and saves the
canary (mender_saveenv_canary is not in the default env, as in Mender's):
that first save is U-Boot's own proof that its saves reach what Linux reads.

Outputs in DIR (described by manifest.json):
  disk.img   a 256 MiB SD card (QEMU wants a power of two): env copies at
             4 and 8 MiB, then p1 FAT boot (nothing U-Boot needs: it boots
             the slot's /boot/Image.gz), p2 rootfs A, p3 rootfs B (v1), p4 data,
             the first partition at 16 MiB
  u-boot.bin U-Boot for QEMU `virt` (-bios)
  rootfs-v2*.img  the reference image's update payloads, built the same way
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from imagekit import mender  # noqa: E402
from imagekit.debs import AptRoot  # noqa: E402
from imagekit.fsimage import MIB, PartitionSpec, assemble_disk, mkfs_vfat  # noqa: E402
from imagekit.profile import ArchProfile, load_profile  # noqa: E402
from imagekit.releases import (  # noqa: E402
    SlotKernel,
    build_data_image,
    build_release_images,
    fetch_packages,
    gzip_kernel,
    releases,
    sha256,
    slot_kernel,
    write_payloads,
)
from imagekit.rootfs import SD_CARD, SLOTS, SlotLayout  # noqa: E402
from imagekit.run import BuildError, run  # noqa: E402
from imagekit.uboot import UBootBuild, build_uboot  # noqa: E402

log = logging.getLogger("recipe.arm64-uboot-stock")

PROFILE = HERE.parent / "arm64-uboot" / "profile.toml"
ENV_SIZE = 0x4000
ENV_OFFSETS = (0x400000, 0x800000)
DISK_MIB = 256
FIRST_MIB = 16  # after both env copies
KERNEL = "Image.gz"  # the name in a slot's /boot; the env's mender_kernel_name
BOOT_MIB = 16
SLOT_MIB = 64  # the Mender client and its libraries are 23 MB
FS_MIB = 60
DATA_MIB = DISK_MIB - FIRST_MIB - BOOT_MIB - 2 * SLOT_MIB  # the rest of the card
# The variables of Mender's contract: what the manifest records of the env it ships.
CONTRACT = (
    "bootlimit",
    "bootcount",
    "upgrade_available",
    "mender_boot_part",
    "mender_boot_part_hex",
    "mender_check_saveenv_canary",
)
UBOOT = UBootBuild(
    source_package="u-boot",
    defconfig="qemu_arm64_defconfig",
    config=HERE / "uboot.config",
    env=HERE / "uboot-env.txt",
    patches=tuple(sorted(HERE.glob("*.patch"))),
)
STEPS = 8


def step(n: int, what: str) -> None:
    print(f"[{n}/{STEPS}] {what}", flush=True)


def fw_env_config() -> str:
    """libubootenv's config: the same raw offsets of the card as U-Boot's."""
    lines = [f"{SD_CARD.device} {offset:#x} {ENV_SIZE:#x}\n" for offset in ENV_OFFSETS]
    return "# The two redundant env copies at raw offsets of the SD card (U-Boot's).\n" + "".join(
        lines
    )


def default_env(text: str) -> dict[str, str]:
    """The env U-Boot compiles in from `text` (CONFIG_DEFAULT_ENV_FILE), read as
    its Makefile does: comment and empty lines dropped, each line one entry, a
    trailing backslash joins the next line (its leading blanks dropped)."""
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    joined = re.sub(r"\\\x00\s*", "", "\x00".join(lines))
    env: dict[str, str] = {}
    for entry in joined.split("\x00"):
        name, sep, value = entry.partition("=")
        if not sep or not name:
            raise BuildError(f"{UBOOT.env.name}: '{entry[:40]}' is not name=value")
        env[name] = value
    return env


def write_env_copies(disk: Path, env: dict[str, str], work: Path) -> None:
    """One `mkenvimage -r` image of `env` at each offset (flags 1 in both copies)."""
    text = work / "default-env.txt"
    text.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    blob = work / "uboot.env"
    run(["mkenvimage", "-r", "-s", str(ENV_SIZE), "-o", blob, text])
    data = blob.read_bytes()
    with disk.open("r+b") as f:
        for offset in ENV_OFFSETS:
            f.seek(offset)
            f.write(data)


def gzipped(kernel: SlotKernel, profile: ArchProfile, work: Path) -> tuple[SlotKernel, ArchProfile]:
    """The slot's kernel as Image.gz, and the profile naming it so (the broken-kernel
    release then breaks the file U-Boot loads). Why: U-Boot reads the SD card
    block by block, and under TCG each 512-byte block costs QEMU 7.2's sd-card
    tens of microseconds; 3.3 MB gzip'd and unpacked by booti reach the kernel
    sooner than 7.6 MB read plain. Boards ship Image.gz for the same reason."""
    packed = work / KERNEL
    gzip_kernel(kernel.image, packed)
    boot = {name: path for name, path in kernel.boot.items() if path != kernel.image}
    slot = replace(kernel, image=packed, boot={**boot, KERNEL: packed})
    return slot, replace(profile, kernel=KERNEL)


def build(out: Path, debs_dir: Path, profile: ArchProfile, name: str) -> None:
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pkgs, generic, client = work / "pkgs", work / "pkgs-watchdog", work / "pkgs-mender"

    step(1, f"fetching Debian {profile.arch} packages (kernel, busybox, libubootenv, mender)")
    apt = AptRoot(profile.arch, debs_dir / f"apt-{profile.arch}")
    apt.prepare()
    pool = debs_dir / f"pool-{profile.arch}"
    packages = fetch_packages(profile, apt, pool, pkgs, generic, client)
    step(2, "kernel and U-Boot from Debian's source (cached; the first builds take minutes)")
    kernel, profile = gzipped(slot_kernel(profile, apt, pool, pkgs, work), profile, work)
    uboot = build_uboot(UBOOT, apt, pool, pool.parent.parent / "uboot", progress=print)

    trees = releases(profile, pkgs, generic, work, kernel)
    step(3, f"building rootfs trees {', '.join(trees)}")
    layout = SlotLayout(SD_CARD, fw_env_config(), client)
    images = build_release_images(
        profile, pkgs, work, trees, layout, FS_MIB, lambda what: step(4, what)
    )
    data_img = build_data_image(work, DATA_MIB, name)

    step(5, "building the boot partition (nothing U-Boot reads: it boots the slot's kernel)")
    readme = work / "README"
    readme.write_text(f"Boot partition of the stock image: U-Boot boots a slot's /boot/{KERNEL}.\n")
    boot_img = work / "boot.img"
    mkfs_vfat(boot_img, BOOT_MIB, "BOOT", {"README": readme})

    step(6, "assembling disk.img (env copies, boot, rootfs A, rootfs B, data)")
    disk = out / "disk.img"
    table = assemble_disk(
        disk,
        [
            PartitionSpec("boot", boot_img, BOOT_MIB, "c"),
            PartitionSpec("rootfs-a", images["v1"], SLOT_MIB, "83"),
            PartitionSpec("rootfs-b", images["v1"], SLOT_MIB, "83"),
            PartitionSpec("data", data_img, DATA_MIB, "83"),
        ],
        first_mib=FIRST_MIB,
    )
    if disk.stat().st_size != DISK_MIB * MIB:
        raise BuildError(f"disk.img is {disk.stat().st_size} bytes, not {DISK_MIB} MiB")
    env = default_env(UBOOT.env.read_text())
    write_env_copies(disk, env, work)

    step(7, "writing u-boot.bin and update payloads")
    shutil.copy2(uboot, out / "u-boot.bin")
    payloads = write_payloads(out, images, trees)

    step(8, "writing manifest.json")
    manifest = {
        "name": name,
        "design": "stock",
        "arch": profile.arch,
        "qemu": {
            "system": profile.qemu.system,
            "machine": profile.qemu.machine,
            "cpu": profile.qemu.cpu,
        },
        "packages": packages,
        "kernel": kernel.description,
        "uboot": f"{UBOOT.source_package} {UBOOT.defconfig} + {UBOOT.config.name}",
        "partitions": table,
        "slots": SLOTS,
        "boot_partition": 1,
        "data_partition": 4,
        "env": {
            "size": ENV_SIZE,
            "offsets": list(ENV_OFFSETS),
            "initial": {k: env[k] for k in CONTRACT if k in env},
        },
        "files": {"disk": "disk.img", "bios": "u-boot.bin"},
        "payloads": payloads,
        "slot_image_sha256": sha256(images["v1"]),
        "client": "mender",
        "mender": {
            "device_type": name,
            "artifact_names": {release: mender.artifact_name(release) for release in trees},
            # Artifacts for this image carry no state script of the harness's.
            "design": "stock",
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--debs", type=Path, help="where downloaded .debs are kept between builds")
    parser.add_argument("--name", default="arm64-uboot-stock")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="    %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        profile = load_profile(PROFILE)
        build(args.out, args.debs or args.out / "debs", profile, args.name)
    except (BuildError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    os.sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
