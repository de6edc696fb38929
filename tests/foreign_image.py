"""A device the recipes never build, assembled from the stock image's pieces.

The stock arm64 image (SD card: p1 boot FAT, p2 slot A, p3 slot B, p4 data,
U-Boot's redundant env at raw offsets 0x400000/0x800000) is taken apart and
put together in another order: p1 data, p2 boot FAT, p3 slot A, p4 slot B.
Everything that names a partition is rewritten to match, as a team with
this layout would have it:

- the env copies (host writer harness.envformat.offsets): mender_boot_part
  and its hex twin say 3, and mender_altbootcmd flips between 3 and 4;
- each slot's rootfs (edited with debugfs, no mount): Mender's
  RootfsPartA/B, and the init script's partition numbers (boot, data, slots).

The result is a by-path target: a YAML that names its files by path only,
with the good release given and the bad ones left to be derived.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.envformat.offsets import read_copies, write_copy
from harness.envformat.uboot import encode_env, inspect_copy
from harness.images import ImageSet
from harness.images.diskimage import partitions
from harness.images.userfiles import sha256_of

SECTOR = 512
ENV_OFFSETS = (0x400000, 0x800000)
ENV_SIZE = 0x4000
# New partition number -> the stock partition whose bytes it gets.
NEW_ORDER = {1: 4, 2: 1, 3: 2, 4: 3}
SLOTS = {"A": 3, "B": 4}
BOOT, DATA = 2, 1
# The stock env's A/B switch, and the same for slots 3 and 4.
ALTBOOT_STOCK = ("if test ${mender_boot_part} = 2; then setenv mender_boot_part 3; "
                 "setenv mender_boot_part_hex 3; else setenv mender_boot_part 2; "
                 "setenv mender_boot_part_hex 2; fi")  # fmt: skip
ALTBOOT_FOREIGN = ("if test ${mender_boot_part} = 3; then setenv mender_boot_part 4; "
                   "setenv mender_boot_part_hex 4; else setenv mender_boot_part 3; "
                   "setenv mender_boot_part_hex 3; fi")  # fmt: skip
# The stock init script's partition names, and this layout's.
RCS_EDITS = (
    ("/dev/${PART}1 /uboot", f"/dev/${{PART}}{BOOT} /uboot"),
    ("/dev/${PART}4 /data", f"/dev/${{PART}}{DATA} /data"),
    ("A:${PART}2 B:${PART}3", f"A:${{PART}}{SLOTS['A']} B:${{PART}}{SLOTS['B']}"),
)
MENDER_EDITS = (
    ('"RootfsPartA": "/dev/mmcblk0p2"', f'"RootfsPartA": "/dev/mmcblk0p{SLOTS["A"]}"'),
    ('"RootfsPartB": "/dev/mmcblk0p3"', f'"RootfsPartB": "/dev/mmcblk0p{SLOTS["B"]}"'),
)


@dataclass(frozen=True)
class ForeignDevice:
    """The assembled device's files and its by-path target YAML."""

    yaml: Path
    disk: Path
    bios: Path
    release: Path

    def sha256s(self) -> dict[str, str]:
        return {p.name: sha256_of(p) for p in (self.disk, self.bios, self.release)}


def _debugfs(image: Path, commands: list[str]) -> str:
    done = subprocess.run(
        [shutil.which("debugfs") or "/usr/sbin/debugfs", "-w", "-f", "-", str(image)],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def _edit_file(image: Path, work: Path, path: str, edits: tuple[tuple[str, str], ...]) -> None:
    """Replace text in one file of an ext4 image (each edit must apply)."""
    local = work / "edit"
    local.unlink(missing_ok=True)
    _debugfs(image, [f"dump {path} {local}"])
    text = local.read_text()
    for old, new in edits:
        assert old in text, f"{path} in {image.name} has no {old!r}"
        text = text.replace(old, new)
    local.write_text(text)
    mode = oct(0o100755 if "init.d" in path else 0o100644)
    _debugfs(image, [f"rm {path}", f"write {local} {path}", f"sif {path} mode 0{mode[2:]}"])


def retarget_rootfs(image: Path, work: Path) -> None:
    """A stock slot image made to name this layout's partitions."""
    _edit_file(image, work, "/etc/init.d/rcS", RCS_EDITS)
    _edit_file(image, work, "/etc/mender/mender.conf", MENDER_EDITS)


def _retarget_env(disk: Path) -> None:
    for offset, blob in zip(ENV_OFFSETS, read_copies(disk, ENV_OFFSETS, ENV_SIZE), strict=True):
        copy = inspect_copy(blob, f"{disk.name}@{offset:#x}")
        assert copy.crc_ok, f"stock env copy at {offset:#x} is not valid"
        env = dict(copy.vars)
        assert env["mender_altbootcmd"].startswith(ALTBOOT_STOCK), env["mender_altbootcmd"]
        env["mender_altbootcmd"] = env["mender_altbootcmd"].replace(ALTBOOT_STOCK, ALTBOOT_FOREIGN)
        env["mender_boot_part"] = env["mender_boot_part_hex"] = str(SLOTS["A"])
        env["mender_uboot_boot"] = f"mmc 0:{BOOT}"
        write_copy(disk, offset, encode_env(env, ENV_SIZE, redundant_flags=copy.flags))


def assemble(stock: ImageSet, out: Path) -> ForeignDevice:
    """The foreign device's files and YAML in `out`, from the stock image."""
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    source = stock.file("disk")
    old = {p.number: p for p in partitions(source)}
    disk = out / "my-device.sdimg"
    disk.unlink(missing_ok=True)
    with disk.open("wb") as f:
        f.truncate(source.stat().st_size)
    start = old[1].start_bytes // SECTOR  # the first partition after both env copies
    table = ["label: dos"]
    layout = {}
    for new in sorted(NEW_ORDER):
        part = old[NEW_ORDER[new]]
        kind = "c" if NEW_ORDER[new] == 1 else "83"
        table.append(f"start={start}, size={part.size_bytes // SECTOR}, type={kind}")
        layout[new] = start * SECTOR
        start += part.size_bytes // SECTOR
    subprocess.run(
        [shutil.which("sfdisk") or "/usr/sbin/sfdisk", "-q", str(disk)],
        input="\n".join(table) + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    with source.open("rb") as src, disk.open("r+b") as dst:
        src.seek(ENV_OFFSETS[0])
        dst.seek(ENV_OFFSETS[0])
        dst.write(src.read(ENV_OFFSETS[1] + ENV_SIZE - ENV_OFFSETS[0]))
        for new, offset in layout.items():
            part = old[NEW_ORDER[new]]
            piece = work / f"p{new}.img"
            src.seek(part.start_bytes)
            piece.write_bytes(src.read(part.size_bytes))
            if new in SLOTS.values() and _is_ext(piece):
                retarget_rootfs(piece, work)
            dst.seek(offset)
            dst.write(piece.read_bytes())
            piece.unlink()
    _retarget_env(disk)
    subprocess.run(["fallocate", "--dig-holes", str(disk)], check=False)
    bios = out / "u-boot.bin"
    shutil.copyfile(stock.file("bios"), bios)
    release = out / "my-rootfs-v2.ext4"
    shutil.copyfile(stock.payloads["v2"].path, release)
    retarget_rootfs(release, work)
    yaml_path = out / "my-device.yaml"
    yaml_path.write_text(yaml.safe_dump(target_yaml(disk, bios, release), sort_keys=False))
    shutil.rmtree(work)
    return ForeignDevice(yaml_path, disk, bios, release)


def _is_ext(image: Path) -> bool:
    with image.open("rb") as f:
        f.seek(1024 + 56)
        return f.read(2) == b"\x53\xef"


def target_yaml(disk: Path, bios: Path, release: Path) -> dict[str, object]:
    """A target naming the user's files by path only (no recipe)."""
    return {
        "imports": ["harness.labgrid_glue"],
        "targets": {
            "main": {
                "drivers": {
                    "ABQEMUDriver": {
                        "qemu_bin": "qemu-aarch64",
                        "machine": "virt",
                        "cpu": "cortex-a57",
                        "memory": "512M",
                        "bios": "uboot",
                        "disk": "disk",
                        "disk_opts": "cache=unsafe",
                        "disk_bus": "sd",
                        "accel": "auto",
                        "guest_arch": "aarch64",
                        "hotplug_ports": 4,
                        "extra_args": "-nic none",
                        "watchdog": "i6300esb",
                        "display": "none",
                    },
                    "ShellDriver": {
                        "prompt": "ab-shell# ",
                        "login_prompt": " login: ",
                        "username": "root",
                        "login_timeout": 30,
                    },
                    "ABBootStrategy": {},
                }
            }
        },
        "tools": {"qemu-aarch64": "qemu-system-aarch64"},
        "images": {"uboot": str(bios), "disk": str(disk)},
        "ab-harness": {
            "update_client": "mender",
            "design": "stock",
            "bootloader": "uboot-mender",
            "env": {"offsets": list(ENV_OFFSETS), "size": ENV_SIZE},
            "slots": dict(SLOTS),
            "boot_timeout_s": 60,
            "releases": {"v2": {"path": str(release), "version": "2"}},
            "device": {"type": "arm64-uboot-stock"},
        },
    }
