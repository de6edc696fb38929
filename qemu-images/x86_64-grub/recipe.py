"""Reference image: x86_64 QEMU q35 + OVMF + GRUB, two rootfs slots, Mender's GRUB env contract.

Usage: python recipe.py --out DIR [--debs DIR]

Outputs in DIR (described by manifest.json):
  disk.img            GPT: ESP (BOOTX64.EFI, the two grubenv copies and
                      their locks), rootfs A (v1), rootfs B (v1), data; each
                      slot carries its own kernel and initrd in /boot
  OVMF_CODE.fd        Debian's OVMF firmware (pflash unit 0, read-only)
  OVMF_VARS.fd        its empty variable store (pflash unit 1; each run
                      writes a copy)
  rootfs-v2.img, rootfs-v2-bad.img, rootfs-v2-broken-kernel.img,
  rootfs-v2-panic-init.img   the same update payloads as arm64-uboot's
Everything but GRUB and OVMF (the host's Debian grub-efi-amd64-bin and ovmf,
listed in host-inputs) comes from Debian amd64 packages, built without root
mounts or loop devices. The rootfs (init scripts, the shared update agent)
is arm64-uboot's with this image's overlay (rootfs/): a serial console on
ttyS0 and the GRUB implementation of /usr/sbin/ab-env.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from imagekit import mender  # noqa: E402
from imagekit.debs import AptRoot, extract  # noqa: E402
from imagekit.fsimage import PartitionSpec, assemble_disk, mkfs_ext4, mkfs_vfat  # noqa: E402
from imagekit.run import BuildError, run  # noqa: E402

log = logging.getLogger("recipe.x86_64-grub")


def _arm64_recipe() -> ModuleType:
    """The arm64 recipe as a module: its initramfs, payload scripts and
    helpers are this image's too (one rootfs design, two bootloaders)."""
    spec = importlib.util.spec_from_file_location(
        "arm64_uboot_recipe", HERE.parent / "arm64-uboot" / "recipe.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


base = _arm64_recipe()

ARCH = "amd64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
GRUB_MODULES_DIR = Path("/usr/lib/grub/x86_64-efi")
# The modules grub.cfg uses, and nothing else: every module in the memdisk
# is decompressed and loaded by an emulated CPU.
GRUB_MODULES = (
    "part_gpt fat ext2 search search_fs_uuid regexp loadenv test echo "
    "linux normal configfile serial terminal reboot sleep"
)
ESP_VOLUME_ID = "abcd1234"  # mkfs_vfat's; GRUB's search sees it as ABCD-1234
ESP_UUID = "ABCD-1234"
GRUBENV_DIR = "grub-mender-grubenv"
GRUBENV_SIZE = 1024
SLOT_MIB = 40  # the amd64 cloud kernel alone is 14 MB
FS_MIB = 28
# The update client: the shell agent ("ab-update") or the real Mender client
# beside it ("mender", imagekit/mender.py; built as x86_64-grub-mender, its
# slots larger by the client's 24 MB).
CLIENT = "ab-update"
# The Linux side's env writer: the hardened one (rootfs/usr/sbin/ab-env, blocks
# written in place) or "stock": Mender's grub-mender-grubenv behaviour
# (stock/grub-mender-grubenv, grub-editenv rewriting files, lock.sha256sum).
ENV_WRITER = "in-place"
MENDER_SLOT_MIB = 56
MENDER_FS_MIB = 52
ESP_MIB = 16
DATA_MIB = 16
SLOTS = {"A": 2, "B": 3}
# The cloud-amd64 kernel builds these as modules, as the arm64 one does.
# Load order matters: insmod does not resolve dependencies.
INITRAMFS_MODULES = (
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "virtio_blk",
    "fat",
    "vfat",
    "nls_cp437",
    "nls_iso8859-1",
    "nls_ascii",
)
GUEST_LIBS = (
    "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "lib/x86_64-linux-gnu/libc.so.6",
    "lib/x86_64-linux-gnu/libm.so.6",
    "lib/x86_64-linux-gnu/liblzma.so.5",
    "lib/x86_64-linux-gnu/libdevmapper.so.1.02.1",
    "lib/x86_64-linux-gnu/libselinux.so.1",
    "usr/lib/x86_64-linux-gnu/libudev.so.1",
    "usr/lib/x86_64-linux-gnu/libpcre2-8.so.0",
)
# Mender's GRUB env (make-env-and-lock-files): no bootlimit (the contract has
# none: the second boot of an uncommitted slot rolls back).
INITIAL_ENV = {"bootcount": "0", "mender_boot_part": "2", "upgrade_available": "0"}
STEPS = 7
DIRS = (
    *("bin", "sbin", "usr/bin", "proc", "sys", "dev", "run", "tmp", "boot", "uboot", "data"),
    *("root", "lib64", "lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"),
)


def step(n: int, what: str) -> None:
    print(f"[{n}/{STEPS}] {what}", flush=True)


def fetch_packages(
    debs_dir: Path, staging: Path, client_staging: Path | None = None
) -> dict[str, str]:
    apt = AptRoot(ARCH, debs_dir / "apt-amd64")
    apt.prepare()
    kernel = apt.resolve("linux-image-cloud-amd64")
    names = [
        kernel,
        "busybox-static",
        "grub-common",  # grub-editenv, for the guest's ab-env
        "libc6",
        "liblzma5",
        "libdevmapper1.02.1",
        "libselinux1",
        "libudev1",
        "libpcre2-8-0",
    ]
    debs = apt.download(names, debs_dir / "pool-amd64")
    for deb in debs.values():
        extract(deb, staging)
    found = {name: deb.name for name, deb in sorted(debs.items())}
    if client_staging is not None:
        found.update(mender.fetch(apt, debs_dir / "pool-amd64", client_staging))
    return found


def build_rootfs_tree(
    pkgs: Path,
    tree: Path,
    version: str,
    extra_files: dict[str, str],
    boot: dict[str, Path],
    client_staging: Path | None = None,
    release: str = "v1",
) -> None:
    """arm64-uboot's rootfs with this image's overlay, busybox, grub-editenv."""
    shutil.copytree(HERE.parent / "arm64-uboot" / "rootfs", tree, symlinks=True)
    shutil.copytree(HERE / "rootfs", tree, symlinks=True, dirs_exist_ok=True)
    (tree / "etc" / "fw_env.config").unlink()  # libubootenv's; no U-Boot env here
    for d in DIRS:
        (tree / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(pkgs / "bin" / "busybox", tree / "bin" / "busybox")
    for applet in base.busybox_applets():
        link = tree / applet
        if applet == "bin/busybox" or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    for lib in GUEST_LIBS:
        shutil.copy2(pkgs / lib, tree / lib)
    (tree / "lib64" / "ld-linux-x86-64.so.2").symlink_to(
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    )
    shutil.copy2(pkgs / "usr" / "bin" / "grub-editenv", tree / "usr" / "bin" / "grub-editenv")
    # Mender's GRUB tools answer to the libubootenv names too.
    if ENV_WRITER == "stock":
        shutil.copy2(HERE / "stock" / "grub-mender-grubenv", tree / "usr/bin/grub-mender-grubenv")
        shutil.copy2(HERE / "stock" / "ab-env", tree / "usr/sbin/ab-env")
    writer = "/usr/bin/grub-mender-grubenv" if ENV_WRITER == "stock" else "/usr/sbin/ab-env"
    for tool in ("fw_printenv", "fw_setenv"):
        (tree / "usr" / "bin" / tool).symlink_to(writer)
    (tree / "etc" / "version").write_text(version + "\n")
    (tree / "etc" / "slot").symlink_to("/run/slot")
    for name, src in boot.items():
        shutil.copy2(src, tree / "boot" / name)
    if client_staging is not None:
        slots = {slot: f"/dev/vda{part}" for slot, part in SLOTS.items()}
        mender.install(
            client_staging, tree, "x86_64-linux-gnu", slots, mender.artifact_name(release)
        )
    for rel, content in extra_files.items():
        path = tree / rel
        path.unlink(missing_ok=True)
        path.write_text(content)
        path.chmod(0o755)


def grubenv(work: Path, name: str, variables: dict[str, str]) -> Path:
    """A grubenv block made by grub-editenv itself, as GRUB reads it."""
    out = work / name
    out.parent.mkdir(parents=True, exist_ok=True)
    run(["grub-editenv", out, "create"])
    run(["grub-editenv", out, "set", *(f"{k}={v}" for k, v in variables.items())])
    if out.stat().st_size != GRUBENV_SIZE:
        raise RuntimeError(f"{out}: grub-editenv made {out.stat().st_size} bytes, not 1024")
    return out


def grub_efi(work: Path) -> Path:
    """A standalone GRUB EFI binary with grub.cfg (values filled in) in its memdisk."""
    text = (HERE / "grub.cfg").read_text()
    version = run(["grub-mkstandalone", "--version"]).decode().split()[-1]
    values = {
        "ESP_UUID": ESP_UUID,
        "PART_A": str(SLOTS["A"]),
        "PART_B": str(SLOTS["B"]),
        "GRUB_VERSION": version,
    }
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    if "@" in text:
        raise RuntimeError(f"grub.cfg: unreplaced @NAME@ left: {text[text.index('@') :][:40]}")
    cfg = work / "grub.cfg"
    cfg.write_text(text)
    out = work / "BOOTX64.EFI"
    run(
        [
            "grub-mkstandalone",
            "--format=x86_64-efi",
            f"--directory={GRUB_MODULES_DIR}",
            f"--modules={GRUB_MODULES}",
            f"--install-modules={GRUB_MODULES}",
            "--locales=",
            "--fonts=",
            "--themes=",
            "--compress=no",
            f"--output={out}",
            f"boot/grub/grub.cfg={cfg}",
        ],
        env=dict(os.environ, SOURCE_DATE_EPOCH="1700000000"),
    )
    return out


def broken_kernel(kernel: Path, out: Path) -> None:
    """A bzImage GRUB's `linux` refuses: its setup header (and magic) zeroed."""
    data = bytearray(kernel.read_bytes())
    data[:4096] = bytes(4096)
    out.write_bytes(bytes(data))


def env_files_on_esp(esp: Path) -> dict[str, Path]:
    """The two grubenv copies with their locks (and, for the stock writer, the
    hash of a clean lock, which is how Mender's tools tell a torn copy)."""
    files: dict[str, Path] = {}
    for copy in ("mender_grubenv1", "mender_grubenv2"):
        for file, variables in (("env", INITIAL_ENV), ("lock", {"editing": "0"})):
            rel = f"{GRUBENV_DIR}/{copy}/{file}"
            files[rel] = grubenv(esp, rel, variables)
        if ENV_WRITER == "stock":
            rel = f"{GRUBENV_DIR}/{copy}/lock.sha256sum"
            digest = base.sha256(files[f"{GRUBENV_DIR}/{copy}/lock"])
            (esp / rel).write_text(f"{digest}  lock\n")
            files[rel] = esp / rel
    return files


def build(out: Path, debs_dir: Path, name: str = "x86_64-grub") -> None:
    work = out / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    pkgs = work / "pkgs"

    client_staging = work / "pkgs-mender" if CLIENT == "mender" else None
    step(1, "fetching Debian amd64 packages (cloud kernel, busybox-static, grub-editenv)")
    packages = fetch_packages(debs_dir, pkgs, client_staging)
    step(2, "building initramfs (busybox + virtio/vfat modules)")
    initrd = base.build_initramfs(pkgs, work, INITRAMFS_MODULES)
    step(3, "building rootfs trees v1, v2, v3, v2-bad, v2-broken-kernel, v2-panic-init")
    kernel = next((pkgs / "boot").glob("vmlinuz-*"))
    bad_kernel = work / "vmlinuz-broken"
    broken_kernel(kernel, bad_kernel)
    boot = {"vmlinuz": kernel, "initrd.gz": initrd}
    trees: dict[str, tuple[str, dict[str, str], dict[str, Path]]] = {
        "v1": ("1", {}, boot),
        "v2": ("2", {}, boot),
        # The crash sweep records v3 over a committed v2 (a release name exists before the update).
        "v3": ("3", {}, boot),
        "v2-bad": ("2-bad", {"etc/health.d/50-app": base.FAILING_APP_CHECK}, boot),
        "v2-broken-kernel": ("2-broken-kernel", {}, {**boot, "vmlinuz": bad_kernel}),
        "v2-panic-init": ("2-panic-init", {"sbin/init": base.DYING_INIT}, boot),
    }
    images: dict[str, Path] = {}
    for release, (version, extra, boot_files) in trees.items():
        tree = work / f"rootfs-{release}"
        build_rootfs_tree(pkgs, tree, version, extra, boot_files, client_staging, release)
        step(4, f"making ext4 image for rootfs {release}")
        images[release] = work / f"rootfs-{release}.img"
        mkfs_ext4(tree, images[release], FS_MIB, f"rootfs-{release}")
    data_tree = work / "data-tree"
    data_tree.mkdir()
    (data_tree / "README").write_text("ab-harness data partition: survives updates and rollbacks\n")
    if client_staging is not None:
        mender.data_files(data_tree, name)
    data_img = work / "data.img"
    mkfs_ext4(data_tree, data_img, DATA_MIB, "data", journal=True)

    step(5, "building the ESP (standalone GRUB, two grubenv copies with locks)")
    esp_files = {"EFI/BOOT/BOOTX64.EFI": grub_efi(work), **env_files_on_esp(work / "esp")}
    esp_img = work / "esp.img"
    mkfs_vfat(esp_img, ESP_MIB, "ESP", esp_files)

    step(6, "assembling disk.img (ESP, rootfs A, rootfs B, data) and firmware")
    table = assemble_disk(
        out / "disk.img",
        [
            PartitionSpec("esp", esp_img, ESP_MIB, "U"),
            PartitionSpec("rootfs-a", images["v1"], SLOT_MIB, "L"),
            PartitionSpec("rootfs-b", images["v1"], SLOT_MIB, "L"),
            PartitionSpec("data", data_img, DATA_MIB, "L"),
        ],
        label="gpt",
    )
    shutil.copy2(OVMF_CODE, out / "OVMF_CODE.fd")
    shutil.copy2(OVMF_VARS, out / "OVMF_VARS.fd")
    payload_names = [release for release in trees if release != "v1"]
    for release in payload_names:
        shutil.copy2(images[release], out / f"rootfs-{release}.img")

    step(7, "writing manifest.json")
    env_files = [f"{GRUBENV_DIR}/mender_grubenv{n}/{f}" for n in (1, 2) for f in ("env", "lock")]
    manifest = {
        "name": name,
        "arch": ARCH,
        "packages": packages,
        "kernel": kernel.name,
        "partitions": table,
        "slots": SLOTS,
        "boot_partition": 1,
        "data_partition": 4,
        "env": {
            "size": GRUBENV_SIZE,
            "files": env_files,
            "partition": 1,
            "initial": INITIAL_ENV,
        },
        "files": {
            "disk": "disk.img",
            "firmware_code": "OVMF_CODE.fd",
            "firmware_vars": "OVMF_VARS.fd",
        },
        "payloads": {
            release: {
                "file": f"rootfs-{release}.img",
                "sha256": base.sha256(out / f"rootfs-{release}.img"),
                "version": trees[release][0],
            }
            for release in payload_names
        },
        "slot_image_sha256": base.sha256(images["v1"]),
        "client": CLIENT,
        "env_writer": ENV_WRITER,
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
    parser.add_argument("--name", default="x86_64-grub")
    parser.add_argument("--client", choices=("ab-update", "mender"), default="ab-update")
    parser.add_argument("--env-writer", choices=("in-place", "stock"), default="in-place")
    args = parser.parse_args()
    global CLIENT, ENV_WRITER, SLOT_MIB, FS_MIB  # noqa: PLW0603 - one build per process
    CLIENT = args.client
    ENV_WRITER = args.env_writer
    if CLIENT == "mender":
        SLOT_MIB, FS_MIB = MENDER_SLOT_MIB, MENDER_FS_MIB
    logging.basicConfig(level=logging.INFO, format="    %(message)s")
    for path, package in ((OVMF_CODE, "ovmf"), (GRUB_MODULES_DIR, "grub-efi-amd64-bin")):
        if not path.exists():
            print(f"error: {path} missing — fix: apt-get install {package}", file=sys.stderr)
            return 1
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        build(args.out, args.debs or args.out / "debs", args.name)
    except (BuildError, RuntimeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    os.sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
