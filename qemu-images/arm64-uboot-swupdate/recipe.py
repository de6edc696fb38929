"""SWUpdate image: the stock arm64 device as an SWUpdate board ships it.

Usage: python recipe.py --out DIR [--debs DIR] [--name NAME]

The device of qemu-images/arm64-uboot-stock (the same SD card, the same
U-Boot 2023.01 built from Debian's source with its own bootcount and a
redundant env at raw offsets 0x400000 and 0x800000, the same releases),
with what an SWUpdate user's board runs in place of Mender:
- U-Boot's compiled-in default env (uboot-env.txt) carries SWUpdate's
  documented dual-copy contract: `bootpart` picks the copy, U-Boot counts
  boots while `upgrade_available` is set, and `altbootcmd` toggles the copy,
  clears the flag and sets `ustate=3` (FAILED);
- Debian's swupdate 2022.12 and the closure of its libraries in every slot,
  with /etc/swupdate.cfg (U-Boot through libubootenv, the CA it checks .swu
  signatures against: Debian's build refuses unsigned ones), /etc/hwrevision
  and /etc/sw-versions (the release the slot holds);
- the boot-time health runner confirms a tested update as SWUpdate's
  documentation leaves it to user space: ustate=0, the count stopped
  (rootfs/usr/sbin/swupdate-confirm).
The test CA and its signer are made here, once per build, and kept beside the
image: the harness signs the .swu files it builds for this image with them.

Slots are 96 MiB (the stock image's are 64): swupdate's library closure is
about 63 MB, libicudata (31 MB, pulled in by libarchive's libxml2) alone half.

Outputs in DIR (described by manifest.json): those of the stock image, and
swupdate-keys/ (ca.pem, signer.pem, signer.key).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from imagekit import mender  # noqa: E402
from imagekit.debs import AptRoot, extract  # noqa: E402
from imagekit.fsimage import MIB, PartitionSpec, assemble_disk, mkfs_ext4, mkfs_vfat  # noqa: E402
from imagekit.profile import ArchProfile, load_profile  # noqa: E402
from imagekit.releases import (  # noqa: E402
    build_data_image,
    fetch_packages,
    releases,
    sha256,
    slot_kernel,
    write_payloads,
)
from imagekit.rootfs import SD_CARD, SLOTS, SlotLayout, build_rootfs_tree  # noqa: E402
from imagekit.run import BuildError, run  # noqa: E402
from imagekit.uboot import UBootBuild, build_uboot  # noqa: E402


def _stock_recipe() -> ModuleType:
    """The stock recipe's module: its device (env copies, card layout, kernel)
    is this image's, used as it is."""
    path = HERE.parent / "arm64-uboot-stock" / "recipe.py"
    spec = importlib.util.spec_from_file_location("stock_recipe", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stock = _stock_recipe()
log = logging.getLogger("recipe.arm64-uboot-swupdate")

SLOT_MIB = 96
FS_MIB = 92
DATA_MIB = stock.DISK_MIB - stock.FIRST_MIB - stock.BOOT_MIB - 2 * SLOT_MIB
# The variables of SWUpdate's U-Boot contract: what the manifest records of the env.
CONTRACT = ("bootpart", "upgrade_available", "bootcount", "bootlimit", "ustate")
UBOOT = UBootBuild(
    source_package="u-boot",
    defconfig="qemu_arm64_defconfig",
    config=stock.UBOOT.config,
    env=HERE / "uboot-env.txt",
    patches=stock.UBOOT.patches,
)
# swupdate and the closure of its NEEDED libraries (readelf -d, then theirs),
# on top of what every slot has (libc, zlib, libubootenv, which swupdate
# dlopens for U-Boot).
PACKAGES = (
    "swupdate",
    "libc6",
    "libacl1",
    "libarchive13",
    "libb2-1",
    "libblkid1",
    "libbrotli1",
    "libbz2-1.0",
    "libcap2",
    "libcom-err2",
    "libconfig9",
    "libcurl4",
    "libext2fs2",
    "libfdisk1",
    "libffi8",
    "libgcc-s1",
    "libgcrypt20",
    "libgmp10",
    "libgnutls30",
    "libgomp1",
    "libgpg-error0",
    "libgpiod2",
    "libgssapi-krb5-2",
    "libhogweed6",
    "libicu72",
    "libidn2-0",
    "libjson-c5",
    "libk5crypto3",
    "libkeyutils1",
    "libkrb5-3",
    "libkrb5support0",
    "libldap-2.5-0",
    "liblua5.3-0",
    "liblz4-1",
    "liblzma5",
    "libnettle8",
    "libnghttp2-14",
    "libp11-kit0",
    "libpsl5",
    "librsync2",
    "librtmp1",
    "libsasl2-2",
    "libssh2-1",
    "libssl3",
    "libstdc++6",
    "libsystemd0",
    "libtasn1-6",
    "libunistring2",
    "liburiparser1",
    "libuuid1",
    "libwebsockets17",
    "libxml2",
    "libzck1",
    "libzstd1",
)
HARDWARE = ("ab-harness-arm64", "1.0")  # /etc/hwrevision: board, revision
KEYS = "swupdate-keys"
STEPS = 8


def step(n: int, what: str) -> None:
    print(f"[{n}/{STEPS}] {what}", flush=True)


def make_signer(folder: Path) -> dict[str, str]:
    """A self-signed test CA and a signing certificate it issued (openssl):
    the slots trust the CA, the harness signs with the signer."""
    folder.mkdir(parents=True)
    ext = folder / "ext.cnf"
    ext.write_text(
        "[v3_ca]\nbasicConstraints = critical,CA:true\n"
        "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
        "[v3_leaf]\nbasicConstraints = critical,CA:false\n"
        "keyUsage = critical,digitalSignature\nsubjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n"
    )
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    cert, key, csr = folder / "signer.pem", folder / "signer.key", folder / "signer.csr"
    new_key = ["-newkey", "rsa:2048", "-nodes", "-config", ext]
    days = ["-days", "3650"]
    ca_subject = ["-subj", "/CN=ab-harness SWUpdate test CA", "-extensions", "v3_ca"]
    run(["openssl", "req", "-x509", *new_key, "-keyout", ca_key, "-out", ca, *days, *ca_subject])
    run(["openssl", "req", *new_key, "-keyout", key, "-out", csr, "-subj", "/CN=ab-harness signer"])
    sign = [
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-extfile",
        ext,
        "-extensions",
        "v3_leaf",
    ]
    run(["openssl", "x509", "-req", "-in", csr, *sign, "-out", cert, *days])
    for scrap in (ext, csr, ca_key, folder / "ca.srl"):
        scrap.unlink(missing_ok=True)
    return {"ca": f"{KEYS}/ca.pem", "cert": f"{KEYS}/signer.pem", "key": f"{KEYS}/signer.key"}


def fetch_swupdate(apt: AptRoot, pool: Path, staging: Path) -> dict[str, str]:
    """Download and unpack swupdate and its libraries into `staging`."""
    debs = apt.download(list(PACKAGES), pool)
    for deb in debs.values():
        extract(deb, staging)
    return {name: deb.name for name, deb in sorted(debs.items())}


def install_swupdate(staging: Path, tree: Path, multiarch: str, release: str, ca: Path) -> None:
    """swupdate, its libraries, its configuration and the release's sw-versions
    into a slot tree, and this recipe's rootfs/ files over the template's."""
    shutil.copy2(staging / "usr/bin/swupdate", tree / "usr/bin/swupdate")
    mender._copy_libs(staging, tree, multiarch)
    shutil.copytree(HERE / "rootfs", tree, symlinks=True, dirs_exist_ok=True)
    (tree / "etc/swupdate").mkdir(parents=True, exist_ok=True)
    shutil.copy2(ca, tree / "etc/swupdate/ca.pem")
    (tree / "etc/hwrevision").write_text(" ".join(HARDWARE) + "\n")
    # SWUpdate's record of what the running software is (name version a line).
    (tree / "etc/sw-versions").write_text(f"rootfs {mender.artifact_name(release)}\n")


def check_needed(tree: Path, multiarch: str, binary: str = "usr/bin/swupdate") -> None:
    """Every shared library the binary needs, and theirs, is in the tree's
    library folders (readelf -d, as the dynamic loader reads them): a missing
    one stops the build here, not at the first install on the device."""
    folders = [tree / "lib" / multiarch, tree / "usr/lib" / multiarch]
    todo, seen = [tree / binary], set()
    while todo:
        path = todo.pop()
        dynamic = run(["readelf", "-d", path]).decode()
        for name in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic):
            if name in seen:
                continue
            seen.add(name)
            found = [f / name for f in folders if (f / name).exists()]
            if not found:
                raise BuildError(f"{binary} needs {name}, which no package in PACKAGES ships")
            todo.append(
                found[0].resolve() if not found[0].is_symlink() else _inside(tree, found[0])
            )


def _inside(tree: Path, link: Path) -> Path:
    """A library symlink followed inside the tree (absolute targets are the guest's)."""
    while link.is_symlink():
        target = link.readlink()
        link = tree / str(target).lstrip("/") if target.is_absolute() else link.parent / target
    return link


def build_slots(
    profile: ArchProfile,
    pkgs: Path,
    staging: Path,
    work: Path,
    trees: dict[str, tuple[str, dict[str, str], dict[str, Path], Path | None]],
    ca: Path,
) -> dict[str, Path]:
    """An ext4 image of FS_MIB per release, each the stock slot tree with swupdate."""
    layout = SlotLayout(SD_CARD, stock.fw_env_config())
    images: dict[str, Path] = {}
    for release, (version, extra, boot_files, kernel_tree) in trees.items():
        tree = work / f"rootfs-{release}"
        build_rootfs_tree(
            profile, pkgs, tree, layout, version, extra, boot_files, kernel_tree, release
        )
        install_swupdate(staging, tree, profile.multiarch, release, ca)
        check_needed(tree, profile.multiarch)
        step(4, f"making ext4 image for rootfs {release}")
        images[release] = work / f"rootfs-{release}.img"
        mkfs_ext4(tree, images[release], FS_MIB, f"rootfs-{release}")
    return images


def build(out: Path, debs_dir: Path, profile: ArchProfile, name: str) -> None:
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pkgs, generic, client = work / "pkgs", work / "pkgs-watchdog", work / "pkgs-swupdate"

    step(1, f"fetching Debian {profile.arch} packages (kernel, busybox, libubootenv, swupdate)")
    apt = AptRoot(profile.arch, debs_dir / f"apt-{profile.arch}")
    apt.prepare()
    pool = debs_dir / f"pool-{profile.arch}"
    packages = fetch_packages(profile, apt, pool, pkgs, generic)
    packages.update(fetch_swupdate(apt, pool, client))
    step(2, "kernel and U-Boot from Debian's source (cached; the first builds take minutes)")
    kernel, profile = stock.gzipped(slot_kernel(profile, apt, pool, pkgs, work), profile, work)
    uboot = build_uboot(UBOOT, apt, pool, pool.parent.parent / "uboot", progress=print)
    keys = make_signer(out / KEYS)

    trees = releases(profile, pkgs, generic, work, kernel)
    step(3, f"building rootfs trees {', '.join(trees)}")
    images = build_slots(profile, pkgs, client, work, trees, out / keys["ca"])
    data_img = build_data_image(work, DATA_MIB, None)

    step(5, "building the boot partition (nothing U-Boot reads: it boots the slot's kernel)")
    readme = work / "README"
    readme.write_text(
        f"Boot partition of the SWUpdate image: U-Boot boots a slot's /boot/{stock.KERNEL}.\n"
    )
    boot_img = work / "boot.img"
    mkfs_vfat(boot_img, stock.BOOT_MIB, "BOOT", {"README": readme})

    step(6, "assembling disk.img (env copies, boot, rootfs A, rootfs B, data)")
    disk = out / "disk.img"
    table = assemble_disk(
        disk,
        [
            PartitionSpec("boot", boot_img, stock.BOOT_MIB, "c"),
            PartitionSpec("rootfs-a", images["v1"], SLOT_MIB, "83"),
            PartitionSpec("rootfs-b", images["v1"], SLOT_MIB, "83"),
            PartitionSpec("data", data_img, DATA_MIB, "83"),
        ],
        first_mib=stock.FIRST_MIB,
    )
    if disk.stat().st_size != stock.DISK_MIB * MIB:
        raise BuildError(f"disk.img is {disk.stat().st_size} bytes, not {stock.DISK_MIB} MiB")
    env = stock.default_env(UBOOT.env.read_text())
    stock.write_env_copies(disk, env, work)

    step(7, "writing u-boot.bin and update payloads")
    shutil.copy2(uboot, out / "u-boot.bin")
    payloads = write_payloads(out, images, trees)

    step(8, "writing manifest.json")
    devices = SD_CARD.slot_devices(SLOTS)
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
        "uboot": f"{UBOOT.source_package} {UBOOT.defconfig} + stock {UBOOT.config.name}",
        "partitions": table,
        "slots": SLOTS,
        "boot_partition": 1,
        "data_partition": 4,
        "env": {
            "size": stock.ENV_SIZE,
            "offsets": list(stock.ENV_OFFSETS),
            "initial": {k: env[k] for k in CONTRACT if k in env},
        },
        "files": {"disk": "disk.img", "bios": "u-boot.bin"},
        "payloads": payloads,
        "slot_image_sha256": sha256(images["v1"]),
        "client": "swupdate",
        "swupdate": {
            "hardware": list(HARDWARE),
            "release_names": {release: mender.artifact_name(release) for release in trees},
            # Where each copy goes and what bootpart names it (the .swu's selections).
            "slot_devices": devices,
            "bootpart": {slot: f"0:{number}" for slot, number in SLOTS.items()},
            "keys": keys,
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--debs", type=Path, help="where downloaded .debs are kept between builds")
    parser.add_argument("--name", default="arm64-uboot-swupdate")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="    %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        profile = load_profile(stock.PROFILE)
        build(args.out, args.debs or args.out / "debs", profile, args.name)
    except (BuildError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    os.sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
