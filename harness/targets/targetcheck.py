"""`ab-harness target check YAML`: does a target description fit the files it names?

Everything is read on the host, nothing boots. One line per check:

    ok   disk: /…/disk.img (256 MiB, dos table: partitions 1-4)
    FAIL slot B: partition 7 is not in disk.img's table (partitions 1-4) — fix: …
    note scenario test_watchdog_rolls_back_a_hung_update: cannot run: target … lacks watchdog (…)

The checks follow the data: the YAML loads; the files its `images:` name
exist (an ``@image:KEY`` is the recipe's cached file once built); the disk's
partition table (read by `DiskLayout`, no tools) has both slots, each an ext4
file system; the env is found and valid where `ab-harness.env` says, and which
slot it boots; the releases and their versions; and which scenarios this
target can run, and why the others cannot (their `ab_needs` markers against
`matrix.capabilities`, their releases against the target's). A ``FAIL`` makes
the command exit 1; a ``note`` is worth knowing and is no failure.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness import images
from harness.bootloaders import bootloader_for
from harness.crashsweep.disklayout import DiskLayout, PartitionInfo
from harness.device import fwenv
from harness.errors import HarnessError
from harness.fieldcase import hostfs
from harness.images import ImageSet
from harness.images.releases import KINDS
from harness.targets.runnable import cannot_run, collect
from harness.targets.target import (
    EXT4_MAGIC,
    EXT4_MAGIC_OFFSET,
    IMAGE_REF,
    TargetSpec,
    default_targets_dir,
    env_offsets_problem,
    load_target,
)

Status = Literal["ok", "note", "FAIL"]

# ABQEMUDriver / QEMUDriver arguments whose value is a key of `images:`.
IMAGE_ARGS = ("bios", "disk", "env_flash", "firmware_code", "firmware_vars", "kernel", "dtb")
MIB = 1 << 20


@dataclass(frozen=True)
class Check:
    """One line of the check: what was looked at, what was found, how to fix it."""

    status: Status
    topic: str
    detail: str
    fix: str | None = None

    def line(self) -> str:
        fix = f" — fix: {self.fix}" if self.fix and self.status != "ok" else ""
        return f"{self.status:<4} {self.topic}: {self.detail}{fix}"


def check_target(
    name: str, *, cache: Path | None = None, scenarios: Path | None = None
) -> list[Check]:
    """Every check of the target named `name` (a name of targets/ or a YAML path)."""
    try:
        spec = load_target(name)
    except HarnessError as err:
        return [Check("FAIL", "target", err.cause, err.fix)]
    out = [Check("ok", "target", f"{spec.path} loads (bootloader {spec.bootloader})")]
    image: ImageSet | None = None
    if spec.image is not None:
        try:
            image = images.cached_image(spec.image, cache=cache)
        except HarnessError as err:
            out.append(Check("FAIL", "image", err.cause, err.fix))
        else:
            if image is None:
                out.append(
                    Check(
                        "note",
                        "image",
                        f"recipe '{spec.image}' is not built yet: its files are not checked",
                        f"ab-harness images build {spec.image}",
                    )
                )
            else:
                out.append(Check("ok", "image", f"recipe '{spec.image}' built: {image.directory}"))
    return out + target_checks(spec, image, scenarios)


def target_checks(
    spec: TargetSpec, image: ImageSet | None, scenarios: Path | None = None
) -> list[Check]:
    """The checks of a loaded target against its files (`image`: its built recipe, if any)."""
    files, out = _files(spec, image)
    disk = files.get("disk")
    if disk is not None:
        out += disk_checks(spec, disk)
    elif spec.board is not None:
        out.append(Check("note", "disk", "a board: its disk is read over its console, not here"))
    elif "disk" in dict(spec.labgrid.get("images") or {}):
        out.append(Check("note", "disk", "partition table, slots and env not checked: no disk"))
    else:
        out.append(Check("note", "disk", "the target names no disk image (images.disk)"))
    releases = _releases(spec, image)
    out += releases[1]
    out += scenario_checks(spec, releases[0], scenarios)
    return out


def _files(spec: TargetSpec, image: ImageSet | None) -> tuple[dict[str, Path], list[Check]]:
    """The files `images:` names, each checked to exist; the existing ones by key."""
    entries = dict(spec.labgrid.get("images") or {})
    found: dict[str, Path] = {}
    out: list[Check] = []
    yaml_fix = f"fix 'images:' in {spec.path}"
    for key, ref in entries.items():
        topic = f"images.{key}"
        if isinstance(ref, str) and ref.startswith(IMAGE_REF):
            if spec.image is None:
                out.append(
                    Check(
                        "FAIL",
                        topic,
                        f"'{ref}' names a recipe file, but 'ab-harness.image' names no recipe",
                        f"add 'image: <recipe>' under ab-harness, or give a path — {yaml_fix}",
                    )
                )
                continue
            if image is None:
                continue  # not built: said once, by the image line
            try:
                path = image.file(ref[len(IMAGE_REF) :])
            except HarnessError as err:
                out.append(Check("FAIL", topic, err.cause, err.fix))
                continue
        else:
            path = spec.path.parent / Path(str(ref)).expanduser()
        if path.is_file():
            found[key] = path
            out.append(Check("ok", topic, f"{path} ({_size(path.stat().st_size)})"))
        else:
            what = "is not a file" if path.exists() else "does not exist"
            out.append(
                Check(
                    "FAIL",
                    topic,
                    f"{path} {what}",
                    f"put the file there, or {yaml_fix} (a relative path starts at the YAML)",
                )
            )
    out += _driver_keys(spec, entries)
    return found, out


def _driver_keys(spec: TargetSpec, entries: Mapping[str, Any]) -> list[Check]:
    """A driver argument that names an image key `images:` does not have."""
    drivers = spec.labgrid.get("targets", {}).get("main", {}).get("drivers", {})
    if isinstance(drivers, list):
        drivers = {k: v for d in drivers for k, v in d.items()}
    out: list[Check] = []
    for driver, args in drivers.items():
        for arg in IMAGE_ARGS:
            key = (args or {}).get(arg) if isinstance(args, dict) else None
            if isinstance(key, str) and key not in entries:
                out.append(
                    Check(
                        "FAIL",
                        f"{driver}.{arg}",
                        f"names image '{key}', which 'images:' does not have "
                        f"(it has: {', '.join(sorted(entries)) or 'none'})",
                        f"add 'images: {{{key}: PATH}}' or fix {driver}.{arg} in {spec.path}",
                    )
                )
    return out


def disk_checks(spec: TargetSpec, disk: Path) -> list[Check]:
    """The disk's table against `slots:`, the env at its location, the slot it boots."""
    try:
        layout = DiskLayout.read(disk)
    except HarnessError as err:
        return [Check("FAIL", "partition table", err.cause, err.fix)]
    parts = {p.number: p for p in layout.partitions}
    listed = _ranges(sorted(parts))
    out = [
        Check(
            "ok",
            "partition table",
            f"{disk.name}: {layout.label} table, partitions {listed}, {_size(layout.size)}",
        )
    ]
    for slot, number in spec.slots.items():
        out.append(_slot(spec, disk, slot, number, parts.get(number), listed))
    out += _env(spec, disk, parts)
    if all(c.status == "ok" for c in out) and spec.bootloader != "grub-mender":
        out.append(_fw_env_config(spec, disk))
    return out


def _fw_env_config(spec: TargetSpec, disk: Path) -> Check:
    """The device's /etc/fw_env.config (in each slot's rootfs) names the env the
    target describes: the device side reads and writes the same bytes."""
    fix = (
        f"make {fwenv.PATH} in the image say "
        f"'{' / '.join(fwenv.config_lines(spec.env, '/dev/mmcblk0'))}' (the device's "
        f"disk names), or fix 'ab-harness.env' in {spec.path}"
    )
    for slot, number in spec.slots.items():
        try:
            blob = hostfs.read_file(disk, number, "ext4", fwenv.PATH)
        except HarnessError as err:
            return Check("note", "fw_env.config", f"slot {slot}: not read ({err.cause})")
        if blob is None:
            return Check("note", "fw_env.config", f"slot {slot} has no {fwenv.PATH}")
        wrong = fwenv.mismatch(spec.env, blob.decode(errors="replace"))
        if wrong is not None:
            return Check("FAIL", "fw_env.config", f"slot {slot}'s {fwenv.PATH} {wrong}", fix)
    return Check("ok", "fw_env.config", f"both slots' {fwenv.PATH} name the env the target does")


def _slot(
    spec: TargetSpec, disk: Path, slot: str, number: int, part: PartitionInfo | None, listed: str
) -> Check:
    fix = f"set ab-harness.slots.{slot} in {spec.path} to the partition of slot {slot}'s rootfs"
    if part is None:
        return Check(
            "FAIL",
            f"slot {slot}",
            f"partition {number} is not in {disk.name}'s table (partitions {listed})",
            fix,
        )
    with disk.open("rb") as f:
        f.seek(part.start + EXT4_MAGIC_OFFSET)
        magic = f.read(len(EXT4_MAGIC))
    if magic != EXT4_MAGIC:
        return Check(
            "FAIL",
            f"slot {slot}",
            f"partition {number} of {disk.name} holds no ext4 file system "
            f"(magic {magic.hex() or 'past the end'}, not 53ef)",
            fix,
        )
    return Check("ok", f"slot {slot}", f"partition {number}, ext4, {_size(part.size)}")


def _env(spec: TargetSpec, disk: Path, parts: Mapping[int, PartitionInfo]) -> list[Check]:
    """The env where the YAML says, valid, and the slot it boots."""
    loc = spec.env
    env_fix = f"fix 'ab-harness.env' in {spec.path}"
    if loc.at_offsets:
        of = f"partition {loc.partition} of {disk.name}" if loc.partition else disk.name
        where = f"offsets {', '.join(f'{o:#x}' for o in loc.offsets)} of {of}"
        table = [(p.number, p.start, p.size) for p in parts.values()]
        problem = env_offsets_problem(loc, disk.name, disk.stat().st_size, table)
        if problem is not None:
            key, cause, fix = problem
            return [Check("FAIL", "env", f"ab-harness.{key} {cause}", f"{fix} — {env_fix}")]
    else:
        where = f"{' + '.join(loc.files)} on partition {loc.partition} of {disk.name}"
        part = parts.get(loc.partition)
        if part is None or part.fat is None:
            cause = "is not in the table" if part is None else "holds no FAT file system"
            return [Check("FAIL", "env", f"partition {loc.partition} {cause}", env_fix)]
    try:
        bootloader = bootloader_for(spec.bootloader, loc)
        env = bootloader.env_from_image(disk)
    except HarnessError as err:
        return [Check("FAIL", "env", f"not valid at {where}: {err.cause}", err.fix or env_fix)]
    copy = env.detail.get("copy")
    said = f" (copy {copy})" if copy else ""
    out = [Check("ok", "env", f"valid at {where}{said}, {len(env.vars)} variables")]
    slot = bootloader.slot_started(env, spec.slots)
    keys = ("mender_boot_part", "upgrade_available", "bootcount", "bootlimit")
    values = " ".join(f"{k}={env.vars[k]}" for k in keys if k in env.vars) or "no A/B variables"
    if slot is None:
        out.append(
            Check(
                "FAIL",
                "boots",
                f"the env names no slot of {dict(spec.slots)} ({values})",
                f"set ab-harness.slots to the partitions the env names, or fix the env — {env_fix}",
            )
        )
    else:
        out.append(Check("ok", "boots", f"slot {slot} ({values})"))
    return out


def _releases(spec: TargetSpec, image: ImageSet | None) -> tuple[set[str] | None, list[Check]]:
    """The releases a scenario can install, and a line each with its version.
    None: not known (the recipe is not built)."""
    if spec.releases:
        return _given_releases(spec)
    if spec.image is None:
        return set(), [
            Check(
                "FAIL",
                "releases",
                "none: the target names no image recipe, so no scenario can install an update",
                "name the recipe that builds its releases (ab-harness.image)",
            )
        ]
    if image is None:
        return None, []
    payloads = image.payloads
    if not payloads:
        return set(), [Check("FAIL", "releases", f"recipe '{spec.image}' built none")]
    out = []
    for name, payload in sorted(payloads.items()):
        if payload.path.is_file():
            out.append(
                Check("ok", f"release {name}", f"version {payload.version} ({payload.path.name})")
            )
        else:
            out.append(Check("FAIL", f"release {name}", f"{payload.path} does not exist"))
    return {n for n, p in payloads.items() if p.path.is_file()}, out


def _given_releases(spec: TargetSpec) -> tuple[set[str], list[Check]]:
    """Releases the YAML names by path (ab-harness.releases); the bad ones a
    scenario needs and the YAML does not give are derived from the good one."""
    out, found = [], set()
    for name, release in sorted(spec.releases.items()):
        if release.path.is_file():
            found.add(name)
            out.append(
                Check("ok", f"release {name}", f"version {release.version} ({release.path})")
            )
        else:
            out.append(
                Check(
                    "FAIL",
                    f"release {name}",
                    f"{release.path} does not exist",
                    f"fix ab-harness.releases.{name}.path in {spec.path}",
                )
            )
    derivable = {f"{good}-{kind}" for good in found for kind in KINDS} - found
    if derivable:
        out.append(
            Check("note", "derived releases", f"made on first use: {', '.join(sorted(derivable))}")
        )
    return found | derivable, out


def scenario_checks(
    spec: TargetSpec, releases: set[str] | None, scenarios: Path | None = None
) -> list[Check]:
    """A line per collected scenario: it can run here, or why it cannot."""
    folder = scenarios or default_targets_dir().parent / "scenarios"
    try:
        found = collect(folder, spec)
    except HarnessError as err:
        return [Check("FAIL", "scenarios", err.cause, err.fix)]
    out: list[Check] = []
    runnable = 0
    for scenario in found:
        why = cannot_run(spec, scenario, releases)
        if why is None:
            runnable += 1
            night = " (nightly: make nightly)" if scenario.nightly else ""
            out.append(Check("ok", f"scenario {scenario.name}", f"can run{night}"))
        else:
            out.append(Check("note", f"scenario {scenario.name}", f"cannot run: {why}"))
    status: Status = "ok" if runnable else "FAIL"
    out.append(
        Check(
            status,
            "scenarios",
            f"{runnable} of {len(found)} can run on {spec.name}",
            "give the target what the scenarios above lack",
        )
    )
    return out


def _size(n: int) -> str:
    return f"{n / MIB:.0f} MiB" if n >= MIB else f"{n} bytes"


def _ranges(numbers: Iterable[int]) -> str:
    """1, 2, 3, 4 → "1-4"; 1, 2, 5 → "1-2, 5"."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs) or "none"


def print_checks(checks: Sequence[Check], indent: str = "") -> bool:
    """Print the lines; True when none failed."""
    for check in checks:
        print(f"{indent}{check.line()}")
    return all(c.status != "FAIL" for c in checks)


def add_target_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    target = subparsers.add_parser("target", help="check a target description")
    sub = target.add_subparsers(dest="target_command", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="check a target YAML against its files: disk, partitions, env, releases, scenarios",
        description=(
            "Check on the host, booting nothing, that the files the target names exist, "
            "the disk's partition table has its slots, the env is valid where the YAML "
            "says and which slot it boots, the releases' versions, and which scenarios "
            "the target can run and why the others cannot. Exit 1 if any check fails."
        ),
    )
    check.add_argument("target", help="target name (targets/NAME.yaml) or YAML path")
    check.add_argument("--cache", type=Path, help="image cache (default ~/.cache/ab-harness)")
    check.add_argument("--scenarios", type=Path, help="scenario folder (default: scenarios/)")
    check.set_defaults(func=run_target_check)


def run_target_check(args: argparse.Namespace) -> int:
    checks = check_target(args.target, cache=args.cache, scenarios=args.scenarios)
    ok = print_checks(checks)
    failed = sum(c.status == "FAIL" for c in checks)
    print(f"ab-harness target check: {'ok' if ok else f'{failed} check(s) failed'}")
    return 0 if ok else 1
