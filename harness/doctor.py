"""`ab-harness doctor`: can this machine run a target, and if not, why not.

One verdict per line, each checked for real (QEMU asked for its version,
KVM tried, the image cache verified, the lab's parts reached):

    ok       qemu: qemu-system-aarch64 7.2.11 (/usr/bin/qemu-system-aarch64)
    note     kvm: not used: guest arch aarch64 differs from host x86_64 (TCG)
    MISSING  firmware: /usr/lib/u-boot/qemu_arm64/u-boot.bin — fix: apt-get install u-boot-qemu

``MISSING`` is something a run needs; ``FAIL`` a check of the target
against its files (`harness.targets.targetcheck`: the disk, its partitions, the env,
the releases, the scenarios it can run) that failed; ``note`` is worth
knowing but not needed (TCG instead of KVM, an image built on first use).
The command exits 1 if anything is missing or failed.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from harness import images
from harness.errors import HarnessError
from harness.lab.labcheck import check_lab, needs_lab
from harness.options import DEFAULT_TARGET
from harness.targets.target import TargetSpec, load_target, resolve_tools
from harness.targets.targetcheck import target_checks

Status = Literal["ok", "note", "MISSING", "FAIL"]

# labgrid versions this harness is tested with (also pinned in pyproject.toml).
LABGRID_TESTED = ((26, 0), (27, 0))

# Host tools the image recipes run (qemu-images/imagekit), and their Debian packages.
BUILD_TOOLS = {
    "mkfs.ext4": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "sfdisk": "fdisk",
    "mkimage": "u-boot-tools",
    "mkenvimage": "u-boot-tools",
    "dpkg-deb": "dpkg",
    "apt-get": "apt",
    "cpio": "cpio",
    "depmod": "kmod",
}

# Which Debian package ships a host file a recipe copies in.
_FILE_PACKAGES = {"/usr/lib/u-boot/": "u-boot-qemu", "/usr/share/OVMF/": "ovmf"}


@dataclass(frozen=True)
class Verdict:
    """One line of the diagnosis."""

    status: Status
    topic: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<8} {self.topic}: {self.detail}"


def harness_version() -> str:
    try:
        return metadata.version("ab-harness")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def diagnose(spec_name: str, cache: Path | None = None) -> list[Verdict]:
    """Every verdict for the target named `spec_name` (a name or a YAML path)."""
    verdicts = [_python(), _labgrid()]
    try:
        spec = load_target(spec_name)
    except HarnessError as err:
        return [*verdicts, Verdict("MISSING", "target", str(err))]
    verdicts.append(Verdict("ok", "target", f"{spec.path} is valid"))
    if needs_lab(spec):
        checks = check_lab(spec)
        for check in checks:
            status: Status = "ok" if check.ok else "MISSING"
            detail = check.what if check.problem is None else str(check.problem)
            verdicts.append(Verdict(status, check.component, detail))
        if not checks:
            verdicts.append(Verdict("note", "lab", "the YAML names no serial/power/place to check"))
        return verdicts + _target(spec, None)
    verdicts += _qemu(spec)
    image_verdicts, image = _image(spec, cache)
    return verdicts + image_verdicts + _target(spec, image)


def _target(spec: TargetSpec, image: images.ImageSet | None) -> list[Verdict]:
    """The target against its files: disk, partitions, env, releases, scenarios."""
    return [
        Verdict(
            c.status, c.topic, c.detail + (f" — fix: {c.fix}" if c.fix and c.status != "ok" else "")
        )
        for c in target_checks(spec, image)
    ]


def _python() -> Verdict:
    return Verdict("ok", "python", f"{platform.python_version()} ({sys.executable})")


def _labgrid() -> Verdict:
    try:
        version = metadata.version("labgrid")
    except metadata.PackageNotFoundError:
        return Verdict("MISSING", "labgrid", "not installed — fix: make setup")
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    low, high = LABGRID_TESTED
    if low <= parts < high:
        return Verdict("ok", "labgrid", f"{version} (tested range {_range()})")
    return Verdict("note", "labgrid", f"{version} is outside the tested range {_range()}")


def _range() -> str:
    (a, b), (c, d) = LABGRID_TESTED
    return f">={a}.{b},<{c}.{d}"


def _driver_args(spec: TargetSpec) -> dict[str, Any]:
    drivers = spec.labgrid.get("targets", {}).get("main", {}).get("drivers", {})
    if isinstance(drivers, list):
        drivers = {k: v for d in drivers for k, v in d.items()}
    for name, args in drivers.items():
        if "QEMUDriver" in name:
            return dict(args or {})
    return {}


def _qemu(spec: TargetSpec) -> list[Verdict]:
    from harness.machines.accel import choose_accel
    from harness.machines.qemu import qemu_version

    try:
        tools = resolve_tools(spec)
    except HarnessError as err:
        return [Verdict("MISSING", "qemu", str(err))]
    args = _driver_args(spec)
    binary = tools.get(str(args.get("qemu_bin", "")))
    if binary is None:
        return [Verdict("MISSING", "qemu", f"no tools entry for qemu_bin in {spec.path}")]
    out: list[Verdict] = []
    try:
        major, minor, micro = qemu_version(binary)
        out.append(Verdict("ok", "qemu", f"{Path(binary).name} {major}.{minor}.{micro} ({binary})"))
    except HarnessError as err:
        return [Verdict("MISSING", "qemu", str(err))]
    guest = str(args.get("guest_arch", "aarch64"))
    try:
        choice = choose_accel(binary, guest, "auto")
        status: Status = "ok" if choice.accel == "kvm" else "note"
        out.append(Verdict(status, "kvm", f"{choice.accel}: {choice.reason}"))
    except HarnessError as err:
        out.append(Verdict("note", "kvm", f"not usable ({err}); TCG is used"))
    return out


def _image(spec: TargetSpec, cache: Path | None) -> tuple[list[Verdict], images.ImageSet | None]:
    """The recipe's host inputs and its cache entry, and the built image (None: not built)."""
    if spec.image is None:
        return [Verdict("note", "image", "the target names no image recipe")], None
    out = list(_host_inputs(spec.image))
    try:
        built = images.cached_image(spec.image, cache=cache)
    except HarnessError as err:
        return [*out, Verdict("MISSING", "image", str(err))], None
    if built is None:
        missing = [t for t in BUILD_TOOLS if shutil.which(t) is None]
        out.append(
            Verdict(
                "note",
                "image",
                f"'{spec.image}' not built yet: the first run builds it (about 6 s with "
                f"Debian's packages in the cache, plus their download the first time), or "
                f"'ab-harness images build {spec.image}'",
            )
        )
        for tool in missing:
            out.append(
                Verdict(
                    "MISSING",
                    "build tool",
                    f"{tool} — fix: apt-get install {BUILD_TOOLS[tool]} (or make setup)",
                )
            )
        return out, None
    out.append(Verdict("ok", "image", f"'{spec.image}' built and intact: {built.directory}"))
    return out, built


def _host_inputs(recipe: str) -> Iterable[Verdict]:
    """The host files (firmware) the recipe copies in, e.g. U-Boot's u-boot.bin."""
    seen: set[str] = set()
    name: str | None = recipe
    while name is not None and name not in seen:
        seen.add(name)
        folder = images.recipe_dir(name)
        listing = folder / "host-inputs"
        lines = listing.read_text().splitlines() if listing.is_file() else []
        for line in (ln.strip() for ln in lines):
            if not line or line.startswith("#"):
                continue
            if Path(line).is_file():
                yield Verdict("ok", "firmware", line)
            else:
                package = next((p for pre, p in _FILE_PACKAGES.items() if line.startswith(pre)), "")
                fix = f"apt-get install {package}" if package else "install the package that has it"
                yield Verdict("MISSING", "firmware", f"{line} — fix: {fix} (or make setup)")
        based = folder / "based-on"
        name = based.read_text().strip() if based.is_file() else None


def add_doctor_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = subparsers.add_parser(
        "doctor", help="check this machine can run a target: QEMU, KVM, firmware, image, lab"
    )
    doctor.add_argument(
        "--target",
        action="append",
        help=f"target name or YAML path (repeatable; default {DEFAULT_TARGET})",
    )
    doctor.add_argument("--cache", type=Path, help="image cache (default ~/.cache/ab-harness)")
    doctor.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    status = 0
    for name in args.target or [DEFAULT_TARGET]:
        print(f"target {name}:")
        for verdict in diagnose(name, args.cache):
            print(f"  {verdict.line()}")
            if verdict.status in ("MISSING", "FAIL"):
                status = 1
    print("ab-harness doctor: " + ("something needed is missing or wrong" if status else "ready"))
    return status
