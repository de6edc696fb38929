"""The real RAUC client (Debian's rauc 1.8 and `rauc service`) as an update client.

Everything the harness knows about RAUC's command line, its bundles and its
status output lives here. The image must carry RAUC: its recipe's RAUC flavour
(`<recipe>-rauc`, qemu-images/x86_64-grub-rauc), which names the compatible,
the test CA its keyring holds and the signing certificate in its manifest
(`rauc` section).

What the device is handed is what a person would hand it: a FAT "USB key"
holding `update.raucb`, a bundle built on the host by Debian's own
`rauc bundle` from the same rootfs payload the shell agent gets (so
`payloads["v2"]` means the same release for every client), signed with the
image's signing certificate, its version the release's (`2` for v2: what
the slot's /etc/version says). Bundles are made once per image and payload
and cached beside the image cache (`<cache>/artifacts/`).

RAUC prints no hash of what it wrote: it checks the bundle's signature and
every image's sha256 from the signed manifest itself and refuses on a
mismatch, so `device_sha256` is None.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.clients import package_cache
from harness.clients.base import ClientBelief, ClientResult
from harness.delivery.fat_key import run_from_key
from harness.device.shell import ShellLike
from harness.errors import DeviceError, HarnessConfigError
from harness.images import Payload

log = logging.getLogger(__name__)

BUNDLE_FILE = "update.raucb"
# The formats Debian's rauc 1.8 writes; "verity" needs the dm-verity module on the device.
FORMATS = ("plain", "verity")


@dataclass(frozen=True)
class RaucTarget:
    """What the image's manifest says about its RAUC system."""

    compatible: str
    slot_class: str
    versions: dict[str, str]
    cert: Path
    key: Path
    keyring: Path


def rauc_target(payload: Payload) -> RaucTarget:
    """The RAUC section of the manifest of the image `payload` belongs to."""
    section, manifest_path = package_cache.manifest_section(
        payload, "rauc", "RAUC system", "run on a RAUC target (qemu-x86_64-grub-rauc)"
    )
    folder = manifest_path.parent
    return RaucTarget(
        str(section["compatible"]),
        str(section["slot_class"]),
        dict(section["versions"]),
        folder / section["cert"],
        folder / section["key"],
        folder / section["keyring"],
    )


def bundle_manifest(compatible: str, version: str, fmt: str, slot_class: str, image: str) -> str:
    """A bundle's manifest.raucm: one image for the slot class, in format `fmt`."""
    return (
        f"[update]\ncompatible={compatible}\nversion={version}\n\n"
        f"[bundle]\nformat={fmt}\n\n"
        f"[image.{slot_class}]\nfilename={image}\n"
    )


def write_bundle(
    image: Path,
    out: Path,
    *,
    compatible: str,
    version: str,
    fmt: str,
    slot_class: str,
    cert: Path,
    key: Path,
) -> Path:
    """`rauc bundle` of one ext4 image into `out`, signed with `cert`/`key`."""
    rauc = shutil.which("rauc")
    if rauc is None:
        raise HarnessConfigError("rauc is not installed on the host", "apt-get install rauc")
    if fmt not in FORMATS:
        raise HarnessConfigError(f"no RAUC bundle format '{fmt}'", f"use one of {FORMATS}")
    # Beside `out`: the image goes in as a hard link where it can (mksquashfs
    # would keep a symlink as a symlink), else as a copy.
    with tempfile.TemporaryDirectory(prefix=".ab-rauc-", dir=out.parent) as tmp:
        content = Path(tmp) / "content"
        content.mkdir()
        try:
            os.link(image.resolve(), content / "rootfs.ext4")
        except OSError:
            shutil.copy2(image, content / "rootfs.ext4")
        text = bundle_manifest(compatible, version, fmt, slot_class, "rootfs.ext4")
        (content / "manifest.raucm").write_text(text)
        out.unlink(missing_ok=True)
        done = subprocess.run(
            [rauc, "bundle", f"--cert={cert}", f"--key={key}", str(content), str(out)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        raise HarnessConfigError(
            f"rauc bundle failed for {image.name}: {done.stderr.strip()[-300:]}",
            "check the image's signing certificate and that squashfs-tools is installed",
        )
    return out


def bundle_for(payload: Payload, fmt: str = "verity", version: str | None = None) -> Path:
    """The signed bundle of `payload` in format `fmt` (built once, then cached):
    for the image's compatible, versioned as the release the payload is."""
    target = rauc_target(payload)
    version = version or target.versions.get(payload.name, payload.version)
    recipe = repr((target.compatible, target.slot_class, version, fmt, target.cert.read_text()))
    variant = hashlib.sha256(recipe.encode()).hexdigest()[:8]
    folder = package_cache.cache_dir(payload)
    out = folder / f"{payload.name}-{fmt}-{payload.sha256[:12]}-{variant}.raucb"
    with package_cache.locked(folder / f".{payload.name}-{fmt}.raucb.lock"):
        if not out.is_file():
            partial = out.with_name(f".{out.name}.partial")
            write_bundle(
                payload.path,
                partial,
                compatible=target.compatible,
                version=version,
                fmt=fmt,
                slot_class=target.slot_class,
                cert=target.cert,
                key=target.key,
            )
            partial.rename(out)
            log.info("built RAUC bundle %s (%d bytes)", out, out.stat().st_size)
    return out


@dataclass(frozen=True)
class SlotStatus:
    """One slot as `rauc status --detailed --output-format=json` reports it."""

    name: str
    bootname: str | None
    device: str
    state: str  # "booted", "active", "inactive"
    boot_status: str | None  # "good", "bad" (None: not a bootable slot)
    bundle_version: str | None  # the version of the bundle last installed into it


@dataclass(frozen=True)
class RaucStatus:
    """RAUC's own account of the system: which slot booted, which boots next."""

    compatible: str
    booted: str  # the booted slot's bootname
    primary: str | None  # the bootname the bootloader starts next (None: none)
    slots: tuple[SlotStatus, ...]

    def slot(self, bootname: str) -> SlotStatus | None:
        return next((s for s in self.slots if s.bootname == bootname), None)


def parse_status(text: str) -> RaucStatus:
    """`rauc status --detailed --output-format=json`'s output, which prints
    its JSON on one line; other lines (a warning) are skipped."""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{"):
            data: dict[str, Any] = json.loads(line)
            break
    else:
        raise DeviceError(
            f"rauc status printed no JSON: {' '.join(text.split())[-200:]}",
            "check that rauc service runs on the device",
        )
    slots = []
    for entry in data.get("slots", []):
        for name, info in entry.items():
            status = info.get("slot_status") or {}
            bundle = status.get("bundle") or {}
            slots.append(
                SlotStatus(
                    name,
                    info.get("bootname"),
                    str(info.get("device", "")),
                    str(info.get("state", "")),
                    info.get("boot_status"),
                    bundle.get("version"),
                )
            )
    by_name = {s.name: s for s in slots}
    primary = data.get("boot_primary")
    primary_slot = by_name.get(primary) if primary else None
    return RaucStatus(
        str(data.get("compatible", "")),
        str(data.get("booted", "")),
        primary_slot.bootname if primary_slot else None,
        tuple(slots),
    )


@dataclass(frozen=True)
class RaucClient:
    """`rauc install`, `rauc status mark-good|mark-active`, `rauc status`, over
    the device's `rauc service` (D-Bus), as a RAUC device's integration uses them."""

    name: str = "rauc"
    command: str = "rauc"
    image_flavour: str = "rauc"
    reports_sha256: bool = False
    # The health path brings up the bus and the service before it marks good.
    boot_extra_s: float = 20.0
    # /data/rauc: the central status file (which bundle went into which slot).
    data_state: tuple[str, ...] = ("rauc",)
    state_paths: tuple[str, ...] = ("/data/rauc/central.raucs",)
    bundle_format: str = "verity"
    # RAUC writes its own contract in its own env (GRUB's grubenv or U-Boot's),
    # and a target that runs it.
    contracts: tuple[str, ...] = ("grub-rauc", "uboot-rauc")
    example_target: str = "qemu-x86_64-grub-rauc"

    def medium(self, payload: Payload) -> Payload:
        """What goes on the key: the payload's signed bundle on a FAT image."""
        bundle = bundle_for(payload, self.bundle_format)
        return package_cache.key_for(bundle, BUNDLE_FILE, f"{payload.name} (RAUC key)")

    def install(
        self, shell: ShellLike, source: str, expect_sha256: str, timeout_s: float = 240.0
    ) -> ClientResult:
        """Mount the key at `source` (a block device) read-only and `rauc install`
        its bundle; the key is unmounted again whatever the outcome. The hash is
        RAUC's business: the signed manifest carries it."""
        command, said = run_from_key(source, BUNDLE_FILE, f"{self.command} install")
        code, out = shell.exec(command, timeout_s=timeout_s)
        return ClientResult(said, code, out)

    def install_url(self, shell: ShellLike, url: str, timeout_s: float = 240.0) -> ClientResult:
        """`rauc install URL` (a verity bundle streamed over HTTP)."""
        return self._run(shell, f"install {shlex.quote(url)}", timeout_s)

    def device_sha256(self, result: ClientResult) -> str | None:
        return None

    def commit(self, shell: ShellLike) -> ClientResult:
        """`rauc status mark-good`: the booted slot is good (what the health path runs)."""
        return self._run(shell, "status mark-good")

    def mark_bad(self, shell: ShellLike) -> ClientResult:
        return self._run(shell, "status mark-bad")

    def rollback(self, shell: ShellLike) -> ClientResult:
        """`rauc status mark-active other`: the other slot boots next."""
        return self._run(shell, "status mark-active other")

    def status(self, shell: ShellLike) -> ClientResult:
        return self._run(shell, "status --detailed --output-format=json")

    def read_status(self, shell: ShellLike) -> tuple[ClientResult, RaucStatus | None]:
        result = self.status(shell)
        if not result.ok:
            return result, None
        try:
            return result, parse_status(result.output)
        except (DeviceError, ValueError):
            return result, None

    def _run(self, shell: ShellLike, verb: str, timeout_s: float = 60.0) -> ClientResult:
        command = f"{self.command} {verb}"
        code, out = shell.exec(command, timeout_s=timeout_s)
        return ClientResult(command, code, out)

    def before_health_pattern(self, slot: str) -> str:
        """The image's init prints this line before its health path, which
        marks the slot good through `rauc status mark-good`."""
        return rf"ab-init: slot={slot} "

    def believes(self, shell: ShellLike) -> ClientBelief:
        """`rauc status`: the version of the bundle RAUC installed into the
        booted slot (a slot RAUC never wrote, the factory one, has no record:
        its release is then what the slot says, `slot_release`), and whether
        it waits for an outcome: the booted slot is not the primary one, or
        RAUC does not call it good."""
        result, status = self.read_status(shell)
        if status is None:
            return ClientBelief("", None, False, (result,))
        booted = status.slot(status.booted)
        installed = booted.bundle_version if booted and booted.bundle_version else ""
        note = ""
        if not installed:
            installed = self.slot_release(shell)
            note = "no bundle recorded for the booted slot: its own release"
        pending = status.primary != status.booted or (
            booted is None or booted.boot_status != "good"
        )
        return ClientBelief(installed, pending, True, (result,), note=note)

    def slot_release(self, shell: ShellLike) -> str:
        """The version the running rootfs carries (/etc/version, which is the
        bundle version the harness gives the release)."""
        return shell.exec0("cat /etc/version").strip()
