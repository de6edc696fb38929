"""The reference x86_64 device as a RAUC device: the x86_64-grub recipe with
RAUC's GRUB integration and Debian's real RAUC 1.8 in every slot.

Usage: python recipe.py --out DIR [--debs DIR]

The same OVMF, standalone GRUB, kernel, initramfs, disk layout and release
trees as qemu-images/x86_64-grub; what differs:
- grub.cfg is RAUC's documented GRUB script (ORDER, A_OK/A_TRY, B_OK/B_TRY in
  one grubenv, `grub/grubenv` on the ESP; /boot/grub is a link to it, RAUC's
  default grubenv path);
- every slot carries `rauc` (Debian's rauc and rauc-service) with the
  libraries its binary and dbus-daemon need (their NEEDED closure, read with
  readelf), `grub-editenv` (RAUC's grub backend runs it), a D-Bus system bus
  config, the loop, squashfs and dm-verity modules (Debian's cloud kernel
  builds them as modules), `/etc/rauc/system.conf` and the test CA as its
  keyring; the health path (rootfs/usr/sbin/ab-update) starts the bus and
  `rauc service` and marks the slot good or bad;
- the test CA and its signing certificate are made here with openssl and
  kept beside the image (`rauc/`), so bundles for this image are signed by
  the keyring its slots trust.
The base recipe is run as a module with its client, ESP and GRUB steps
replaced by this recipe's (its own file stays as it is, and with it the
cache keys of the images built from it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from imagekit.debs import AptRoot, extract  # noqa: E402
from imagekit.run import run  # noqa: E402

NAME = "x86_64-grub-rauc"
COMPATIBLE = "ab-harness x86_64-grub-rauc"
GRUBENV = "grub/grubenv"  # on the ESP
INITIAL_ENV = {"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "0"}
# Slots large enough for the kernel (14 MB) and RAUC's closure (about 20 MB).
SLOT_MIB = 64
FS_MIB = 60
MULTIARCH = "x86_64-linux-gnu"
# rauc, the bus, and every library their binaries need (readelf's NEEDED
# closure picks what is copied; a package listed here that ends up unused
# costs a download only).
PACKAGES = (
    "rauc",
    "rauc-service",
    "dbus-daemon",
    "libdbus-1-3",
    "libexpat1",
    "libaudit1",
    "libcap-ng0",
    "libcap2",
    "libapparmor1",
    "libsystemd0",
    "libgcrypt20",
    "libgpg-error0",
    "liblz4-1",
    "libzstd1",
    "libglib2.0-0",
    "libjson-glib-1.0-0",
    "libcurl3-gnutls",
    "libfdisk1",
    "libblkid1",
    "libmount1",
    "libuuid1",
    "libselinux1",
    "libpcre2-8-0",
    "libffi8",
    "zlib1g",
    "libssl3",
    "libbrotli1",
    "libgmp10",
    "libgnutls30",
    "libgssapi-krb5-2",
    "libk5crypto3",
    "libkrb5-3",
    "libkrb5support0",
    "libkeyutils1",
    "libcom-err2",
    "libhogweed6",
    "libnettle8",
    "libidn2-0",
    "libunistring2",
    "libldap-2.5-0",
    "libsasl2-2",
    "libnghttp2-14",
    "libp11-kit0",
    "libpsl5",
    "librtmp1",
    "libssh2-1",
    "libtasn1-6",
    "liblzma5",
    "libc6",
    "libgcc-s1",
)
BINARIES = ("usr/bin/rauc", "usr/bin/dbus-daemon")
# Loaded in this order by the health path before `rauc service` starts.
MODULES = ("loop", "squashfs", "dm-mod", "dm-bufio", "reed_solomon", "dm-verity")
EXTENSIONS = """[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _base_recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "x86_64_grub_recipe", HERE.parent / "x86_64-grub" / "recipe.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


grub = _base_recipe()
_base_fetch = grub.fetch_packages
_base_tree = grub.build_rootfs_tree
STATE: dict[str, Path] = {}


def system_conf() -> str:
    """RAUC's system.conf: its GRUB backend on the ESP's grubenv, the two slots."""
    return (
        "[system]\n"
        f"compatible={COMPATIBLE}\n"
        "bootloader=grub\n"
        "grubenv=/boot/grub/grubenv\n"
        # The rootfs is mounted read-only: RAUC's mounts and its status live elsewhere.
        "mountprefix=/run/rauc/mnt\n"
        "statusfile=/data/rauc/central.raucs\n"
        "bundle-formats=plain verity\n"
        "\n[keyring]\npath=/etc/rauc/ca.cert.pem\n"
        + "".join(
            f"\n[slot.rootfs.{i}]\ndevice=/dev/vda{part}\ntype=ext4\nbootname={slot}\n"
            for i, (slot, part) in enumerate(grub.SLOTS.items())
        )
    )


def make_ca(folder: Path) -> dict[str, Path]:
    """A test CA and a signing certificate it issued (openssl), for this image only."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = folder / "ext.cnf"
    ext.write_text(EXTENSIONS)
    paths = {
        "ca": folder / "ca.cert.pem",
        "ca_key": folder / "ca.key.pem",
        "cert": folder / "signing.cert.pem",
        "key": folder / "signing.key.pem",
    }
    csr = folder / "signing.csr"
    days = ("-days", "36500")
    ca_subject = ("-subj", "/CN=ab-harness RAUC test CA", "-extensions", "v3_ca")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", paths["ca_key"],
         "-out", paths["ca"], *days, *ca_subject, "-config", ext])  # fmt: skip
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", paths["key"], "-out", csr,
         "-subj", "/CN=ab-harness RAUC signer", "-config", ext])  # fmt: skip
    run(["openssl", "x509", "-req", "-in", csr, "-CA", paths["ca"], "-CAkey", paths["ca_key"],
         "-CAcreateserial", "-out", paths["cert"], *days, "-extfile", ext,
         "-extensions", "v3_leaf"])  # fmt: skip
    csr.unlink()
    (folder / "ca.cert.srl").unlink(missing_ok=True)
    ext.unlink()
    return paths


def fetch_packages(
    debs_dir: Path, staging: Path, client_staging: Path | None = None
) -> dict[str, str]:
    """The base image's packages, then RAUC's into a staging folder of their own."""
    found = _base_fetch(debs_dir, staging, client_staging)
    rauc_staging = staging.parent / "pkgs-rauc"
    apt = AptRoot(grub.ARCH, debs_dir / "apt-amd64")
    debs = apt.download(list(PACKAGES), debs_dir / "pool-amd64")
    for deb in debs.values():
        extract(deb, rauc_staging)
    STATE["staging"] = rauc_staging
    STATE["kernel"] = staging
    found.update({name: deb.name for name, deb in sorted(debs.items())})
    return found


def _needed(binary: Path) -> list[str]:
    out = subprocess.run(
        ["readelf", "-d", str(binary)], capture_output=True, text=True, check=True
    ).stdout
    return [
        line.split("[", 1)[1].split("]", 1)[0] for line in out.splitlines() if "(NEEDED)" in line
    ]


def _find_lib(name: str, roots: tuple[Path, ...]) -> Path:
    for root in roots:
        for sub in (f"lib/{MULTIARCH}", f"usr/lib/{MULTIARCH}"):
            if (root / sub / name).exists():
                return root / sub / name
    raise RuntimeError(f"library {name} is in none of the downloaded packages")


def copy_closure(tree: Path, roots: tuple[Path, ...]) -> None:
    """BINARIES and the shared libraries they need, recursively, into `tree`."""
    todo = [roots[0] / b for b in BINARIES]
    for binary in todo:
        dest = tree / binary.relative_to(roots[0])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, dest)
    seen: set[str] = set()
    while todo:
        for name in _needed(todo.pop()):
            if name in seen:
                continue
            seen.add(name)
            src = _find_lib(name, roots)
            dest = tree / "usr" / "lib" / MULTIARCH / name
            if (tree / "lib" / MULTIARCH / name).exists() or dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src.resolve(), dest)
            todo.append(src.resolve())


def install_rauc(tree: Path) -> None:
    """RAUC, its bus, its modules and its config into one slot's tree."""
    staging, pkgs = STATE["staging"], STATE["kernel"]
    copy_closure(tree, (staging, pkgs))
    for sub in ("usr/share/dbus-1/system.d", "usr/share/dbus-1/interfaces"):
        shutil.copytree(staging / sub, tree / sub, dirs_exist_ok=True)
    shutil.copytree(HERE / "rootfs", tree, symlinks=True, dirs_exist_ok=True)
    modules = tree / "lib" / "modules" / "rauc"
    modules.mkdir(parents=True, exist_ok=True)
    kernel_modules = next((pkgs / "lib" / "modules").iterdir())
    for name in MODULES:
        found = next(kernel_modules.rglob(f"{name}.ko"))
        shutil.copy2(found, modules / found.name)
    (modules / "order").write_text("".join(f"{m}\n" for m in MODULES))
    etc = tree / "etc" / "rauc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "system.conf").write_text(system_conf())
    shutil.copy2(STATE["ca"], etc / "ca.cert.pem")
    # GLib finds the system bus at /var/run/dbus/system_bus_socket.
    var = tree / "var"
    var.mkdir(exist_ok=True)
    if not (var / "run").exists():
        (var / "run").symlink_to("/run")
    # RAUC's default grubenv path, on the ESP (mounted at /uboot by rcS).
    (tree / "boot" / "grub").symlink_to("/uboot/grub")
    for tool in ("fw_printenv", "fw_setenv"):
        (tree / "usr" / "bin" / tool).unlink()  # Mender's names: no such env here


def build_rootfs_tree(
    pkgs: Path,
    tree: Path,
    version: str,
    extra_files: dict[str, str],
    boot: dict[str, Path],
    client_staging: Path | None = None,
    release: str = "v1",
) -> None:
    """The base tree with RAUC added; the release's own files (a failing
    health check, a dying init) are written again last, as the base does."""
    _base_tree(pkgs, tree, version, {}, boot, client_staging, release)
    install_rauc(tree)
    for rel, content in extra_files.items():
        path = tree / rel
        path.unlink(missing_ok=True)
        path.write_text(content)
        path.chmod(0o755)


def grub_efi(work: Path) -> Path:
    """The standalone GRUB EFI binary with RAUC's grub.cfg in its memdisk."""
    text = (HERE / "grub.cfg").read_text().replace("@GRUBENV@", GRUBENV)
    cfg = work / "grub-rauc.cfg.in"
    cfg.write_text(text)
    original = grub.HERE
    # The base writes its binary from HERE/grub.cfg: point it at this one.
    staged = work / "grub-rauc"
    staged.mkdir(exist_ok=True)
    shutil.copy2(cfg, staged / "grub.cfg")
    grub.HERE = staged
    try:
        return _base_grub_efi(work)
    finally:
        grub.HERE = original


_base_grub_efi = grub.grub_efi


def env_files_on_esp(esp: Path) -> dict[str, Path]:
    """RAUC's one grubenv, made by grub-editenv, every slot OK and untried."""
    return {GRUBENV: grub.grubenv(esp, GRUBENV, INITIAL_ENV)}


def finish_manifest(out: Path) -> None:
    """The base's manifest, with RAUC's env, client and keys."""
    path = out / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["env"] = {"size": grub.GRUBENV_SIZE, "files": [GRUBENV], "partition": 1}
    manifest["env"]["initial"] = INITIAL_ENV
    manifest["client"] = "rauc"
    manifest["env_writer"] = "grub-editenv"
    manifest["rauc"] = {
        "compatible": COMPATIBLE,
        "slot_class": "rootfs",
        "versions": {name: p["version"] for name, p in manifest["payloads"].items()},
        "keyring": "rauc/ca.cert.pem",
        "cert": "rauc/signing.cert.pem",
        "key": "rauc/signing.key.pem",
    }
    manifest["files"].update({"rauc_ca": "rauc/ca.cert.pem"})
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def main() -> int:
    args = sys.argv[1:]
    out = Path(args[args.index("--out") + 1])
    debs = Path(args[args.index("--debs") + 1]) if "--debs" in args else out / "debs"
    out.mkdir(parents=True, exist_ok=True)
    ca = make_ca(out / "rauc")
    (out / "rauc" / "ca.key.pem").unlink()  # nothing is signed by the CA after this
    STATE["ca"] = ca["ca"]
    grub.SLOT_MIB, grub.FS_MIB = SLOT_MIB, FS_MIB
    grub.fetch_packages = fetch_packages
    grub.build_rootfs_tree = build_rootfs_tree
    grub.grub_efi = grub_efi
    grub.env_files_on_esp = env_files_on_esp
    grub.logging.basicConfig(level=grub.logging.INFO, format="    %(message)s")
    try:
        grub.build(out, debs, NAME)
    except (grub.BuildError, RuntimeError, OSError, subprocess.CalledProcessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finish_manifest(out)
    os.sync()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
