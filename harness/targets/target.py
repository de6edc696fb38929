"""Target descriptions: a labgrid environment YAML plus an `ab-harness:` section.

A target file is an ordinary labgrid environment (targets, drivers, tools,
images) so a physical board differs from a QEMU target only in its YAML.
The `ab-harness:` section says what labgrid does not know: which image
recipe feeds it, where the bootloader keeps its env, which partition is
which slot. Every key is validated on load; errors name the file and key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import HarnessConfigError
from harness.images import diskimage
from harness.images.userreleases import Device, Release, parse_device, parse_releases
from harness.targets.targetdisk import (
    EXT4_MAGIC,
    EXT4_MAGIC_OFFSET,
    check_against_disk,
    env_offsets_problem,
)
from harness.targets.targetfiles import (
    IMAGE_REF,
    MaterializedTarget,
    disk_of,
    materialize,
    resolve_tools,
    sparse_copy,
)
from harness.targets.targetschema import (
    BOOTLOADERS,
    DEFAULT_READY_MARKER,
    KNOWN_DELIVERIES,
    Checked,
    delivery_option_names,
    rig_option_names,
    section,
)

# Re-exported: a target's disk checks and its per-test files live in their own modules.
__all__ = [
    "BOOTLOADERS",
    "DEFAULT_READY_MARKER",
    "EXT4_MAGIC",
    "EXT4_MAGIC_OFFSET",
    "IMAGE_REF",
    "EnvLocation",
    "MaterializedTarget",
    "TargetSpec",
    "check_against_disk",
    "disk_of",
    "env_offsets_problem",
    "load_target",
    "materialize",
    "resolve_tools",
    "sparse_copy",
]

DEFAULT_CLIENT = "ab-update"
# Where each bootloader kind keeps its env: files on a partition (ENV_FILES),
# or raw offsets of the disk or of one partition (ENV_AT_OFFSETS).
ENV_FILES = {
    "uboot": ((1, 2), "one or two file names (two = redundant copies)"),
    "grub-mender": ((4,), "four files: mender_grubenv1/env, mender_grubenv1/lock, and copy 2's"),
    # RAUC's grubenv= file (e.g. EFI/BOOT/grubenv on the ESP): one copy, no lock.
    "grub-rauc": ((1,), "one grubenv file (system.conf's grubenv=, e.g. EFI/BOOT/grubenv)"),
}
# RAUC's and SWUpdate's guides both put U-Boot's redundant env at CONFIG_ENV_OFFSET(_REDUND).
ENV_AT_OFFSETS = ("uboot-mender", "uboot-rauc", "uboot-swupdate")
# U-Boot's MMC env driver reads and writes whole 512-byte blocks.
ENV_ALIGN = 512
# A placeholder of an example target (targets/examples/), to be replaced by a path.
PLACEHOLDER = re.compile(r"@[A-Z][A-Z0-9_]*@")


def default_targets_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "targets"


@dataclass(frozen=True)
class EnvLocation:
    """Where the bootloader env lives, as fw_env.config says it: files on a
    partition of the boot disk, or raw byte offsets (`offsets`, one per copy, in
    fw_env.config's order; then `files` is empty) of the boot disk itself
    (`partition` 0) or of partition `partition`. `default_slot`: the slot the
    bootloader's compiled-in default env boots (None: the first slot)."""

    partition: int
    files: tuple[str, ...]
    size: int
    offsets: tuple[int, ...] = ()
    default_slot: str | None = None

    @property
    def at_offsets(self) -> bool:
        return bool(self.offsets)

    @property
    def copy_names(self) -> tuple[str, ...]:
        """How each copy is named in a report: its file, or its offset in hex
        (behind its partition's number, for offsets of a partition)."""
        if not self.offsets:
            return self.files
        where = f"p{self.partition}@" if self.partition else ""
        return tuple(f"{where}{o:#x}" for o in self.offsets)

    def disk_offsets(self, disk: Path) -> tuple[int, ...]:
        """The copies' byte offsets of the whole disk image: a partition's start
        added for offsets of a partition (read from the disk's table)."""
        if not self.partition:
            return self.offsets
        part = diskimage.partition(disk, self.partition)
        for offset in self.offsets:
            if offset + self.size > part.size_bytes:
                raise HarnessConfigError(
                    f"{disk.name}: an env copy at {offset:#x} of partition {self.partition} "
                    f"({self.size:#x} bytes) ends past the partition's {part.size_bytes:#x} bytes",
                    "set ab-harness.env.offsets to offsets inside that partition "
                    "(fw_env.config's second column for its /dev/…pN line)",
                )
        return tuple(part.start_bytes + o for o in self.offsets)


@dataclass(frozen=True)
class TargetSpec:
    """A validated target file: the labgrid part and the harness part."""

    name: str
    path: Path
    image: str | None
    bootloader: str
    env: EnvLocation
    slots: Mapping[str, int]
    boot_timeout_s: float
    labgrid: Mapping[str, Any] = field(repr=False)
    update_client: str = "ab-update"
    delivery: str | None = None  # None: the target offers no way to push a payload
    delivery_options: Mapping[str, Any] = field(default_factory=dict)
    board: BoardStorage | None = None
    # A virtual board (harness.lab.rig): started per test, its ports filled into the resources.
    rig: Mapping[str, Any] | None = None
    # The harness acquires the target's RemotePlace around each test, waiting this
    # long while someone else holds it (harness.lab.place); None: the user acquires it.
    acquire_place_s: float | None = None
    # Placeholder port numbers in the labgrid section, each replaced by a free
    # host port per test (harness.targets.hostports): a forwarded port and its user agree.
    host_ports: tuple[int, ...] = ()
    # Which design of the A/B stack the device runs: "stock" (the updater and its
    # bootloader integration as shipped) or "hardened" (the reference image's
    # fixes). Known findings (harness.judge.findings) apply to one or the other.
    design: str = "hardened"
    # The user's own releases by name (harness.images.userreleases.Release), and the
    # device's conventions the bad releases are derived with.
    releases: Mapping[str, Release] = field(default_factory=dict)
    device: Device = field(default_factory=Device)

    @property
    def ready_marker(self) -> str:
        """The console line (a regex) that says a boot is ready (`device.ready_marker`)."""
        return self.device.ready_marker

    @property
    def slot_names(self) -> tuple[str, ...]:
        return tuple(self.slots)

    def slot_of_partition(self, partition: int) -> str:
        for name, number in self.slots.items():
            if number == partition:
                return name
        raise HarnessConfigError(
            f"target '{self.name}': partition {partition} is not a slot ({dict(self.slots)})",
            f"fix 'ab-harness: slots' in {self.path}",
        )


@dataclass(frozen=True)
class BoardStorage:
    """How a device with no host view of its disk names its storage (`ab-harness.board`).

    Partition N is `disk` + `partition_prefix` + N (`/dev/vda2`, `/dev/mmcblk0p2`);
    the env partition is mounted at `env_dir`, where the env files are read.
    """

    disk: str
    env_dir: str
    partition_prefix: str = ""

    def partition(self, number: int) -> str:
        return f"{self.disk}{self.partition_prefix}{number}"


def resolve_target_path(name_or_path: str, targets_dir: Path | None = None) -> Path:
    """A target given as a path, or as a name of targets/NAME.yaml."""
    as_path = Path(name_or_path)
    if as_path.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not as_path.is_file():
            raise HarnessConfigError(
                f"target file {as_path} does not exist",
                "pass --ab-target NAME or an existing YAML path",
            )
        return as_path.resolve()
    root = targets_dir or default_targets_dir()
    candidate = root / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in root.glob("*.yaml"))
        raise HarnessConfigError(
            f"unknown target '{name_or_path}'",
            f"use one of: {', '.join(known)} (from {root}), or a YAML path",
        )
    return candidate


def load_target(name_or_path: str, targets_dir: Path | None = None) -> TargetSpec:
    """Load and validate a target file against `harness.targets.targetschema`; raise
    HarnessConfigError naming file and key."""
    path = resolve_target_path(name_or_path, targets_dir)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise HarnessConfigError(
            f"{path}: invalid YAML{where}: {problem}", "fix the YAML syntax"
        ) from None
    unfilled = sorted(set(_placeholders(data)))
    if unfilled:
        raise HarnessConfigError(
            f"{path} is an example: its placeholders {', '.join(unfilled)} are not filled in",
            "copy it and replace each @NAME@ by the path of your file (docs/guide/own-device.md)",
        )
    top = Checked(data, "<top>", path)
    top.reject_unknown({"targets", "tools", "images", "paths", "options", "imports", "ab-harness"})
    targets = Checked(top.get("targets", dict), "targets", path)
    if list(targets.data) != ["main"]:
        targets.fail("must define exactly one labgrid target, named 'main'")
    main = Checked(targets.data["main"], "targets.main", path)
    drivers = main.get("drivers", (dict, list))
    if isinstance(drivers, list):
        if not all(isinstance(d, dict) for d in drivers):
            main.fail("'targets.main.drivers' must be a mapping or a list of mappings")
        drivers = {k: v for d in drivers for k, v in d.items()}
    if not any("Strategy" in name for name in drivers):
        main.fail("no strategy in 'targets.main.drivers' (add ABBootStrategy)")

    ab = Checked(top.get("ab-harness", dict), "ab-harness", path, section("ab-harness"))
    slots = _slots(ab)
    timeout = ab["boot_timeout_s"]
    if timeout <= 0:
        ab.fail("'ab-harness.boot_timeout_s' must be positive")
    delivery, delivery_options = _delivery(ab, "ABQEMUDriver" in drivers)
    releases = parse_releases(ab["releases"], path)
    device = parse_device(ab["device"], path, releases)
    labgrid = {k: v for k, v in data.items() if k != "ab-harness"}
    return TargetSpec(
        name=path.stem,
        path=path,
        image=ab["image"],
        bootloader=ab["bootloader"],
        env=_env_location(Checked(ab["env"], "ab-harness.env", path), ab["bootloader"], slots),
        slots=slots,
        boot_timeout_s=float(timeout),
        update_client=ab["update_client"],
        labgrid=labgrid,
        delivery=delivery,
        delivery_options=delivery_options,
        board=_board(ab, path),
        rig=_rig(ab, path),
        acquire_place_s=ab["acquire_place_s"],
        host_ports=_host_ports(ab),
        design=ab["design"],
        releases=releases,
        device=device,
    )


def _placeholders(value: Any) -> list[str]:
    """Every @NAME@ in the YAML's values (comments may mention them freely)."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in _placeholders(v)]
    if isinstance(value, list):
        return [p for v in value for p in _placeholders(v)]
    return PLACEHOLDER.findall(value) if isinstance(value, str) else []


def _slots(ab: Checked) -> dict[str, int]:
    """ab-harness.slots: two slot names, each a different partition number."""
    slots = ab["slots"]
    if len(slots) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in slots.values()
    ):
        ab.fail(
            "'ab-harness.slots' must map two slot names to partition numbers, e.g. {A: 2, B: 3}"
        )
    if len(set(slots.values())) != len(slots):
        number = next(v for v in slots.values() if list(slots.values()).count(v) > 1)
        ab.fail(f"'ab-harness.slots' gives both slots partition {number} ({slots})")
    return {str(k): int(v) for k, v in slots.items()}


def _host_ports(ab: Checked) -> tuple[int, ...]:
    """ab-harness.host_ports: placeholder port numbers replaced per test
    (harness.targets.hostports)."""
    ports = ab["host_ports"]
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports):
        ab.fail("'ab-harness.host_ports' must list port numbers, e.g. [2222]")
    return tuple(ports)


def _delivery(ab: Checked, qemu: bool) -> tuple[str | None, dict[str, Any]]:
    """ab-harness.delivery: a name, or {method: NAME, option: value, ...}."""
    raw = ab["delivery"] if "delivery" in ab.data else ("hotplug" if qemu else None)
    if raw is None:
        return None, {}
    if isinstance(raw, str):
        method, options = raw, {}
    else:
        options = dict(raw)
        method = options.pop("method", None)
    if method not in KNOWN_DELIVERIES:
        ab.fail(
            f"'ab-harness.delivery' is {method!r}; supported: {', '.join(KNOWN_DELIVERIES)} "
            "(a name, or a mapping with 'method:' and its options)"
        )
    unknown = sorted(set(options) - set(delivery_option_names(str(method))))
    if unknown:
        known = ", ".join(delivery_option_names(str(method))) or "none"
        ab.fail(f"delivery '{method}' has no option '{unknown[0]}' (its options: {known})")
    return str(method), options


def _rig(ab: Checked, path: Path) -> dict[str, Any] | None:
    """ab-harness.rig: the virtual board's options (harness.lab.rig)."""
    if ab["rig"] is None:
        return None
    rig = Checked(ab["rig"], "ab-harness.rig", path)
    rig.reject_unknown(set(rig_option_names()))
    return dict(rig.data)


def _board(ab: Checked, path: Path) -> BoardStorage | None:
    """ab-harness.board: how the device names its disk (for targets without a host view)."""
    if ab["board"] is None:
        return None
    board = Checked(ab["board"], "ab-harness.board", path, section("ab-harness.board"))
    return BoardStorage(board["disk"], board["env_dir"], board["partition_prefix"])


def _env_location(env: Checked, bootloader: str, slots: Mapping[str, int]) -> EnvLocation:
    """ab-harness.env: files on a partition, or raw offsets of the disk or of one
    partition, as the bootloader kind keeps it."""
    schema = section("ab-harness.env")
    env.reject_unknown(set(schema.names))
    size = _env_size(env)
    default_slot = env.get("default_slot", str, None)
    if default_slot is not None and default_slot not in slots:
        env.fail(f"'ab-harness.env.default_slot' is {default_slot!r}, not a slot of {dict(slots)}")
    partition = env.get("partition", int, None)
    if partition is not None and partition <= 0:
        env.fail(
            f"'ab-harness.env.partition' must be a partition number (1 or more), got {partition}"
        )
    if bootloader in ENV_AT_OFFSETS:
        if "files" in env.data:
            env.fail(
                f"'ab-harness.env.files' is for a bootloader keeping its env in files; "
                f"bootloader '{bootloader}' keeps it at raw offsets (use 'offsets', and "
                "'partition' for offsets of a partition)"
            )
        offsets = _env_offsets(env, size)
        return EnvLocation(partition or 0, (), size, offsets, default_slot)
    if "offsets" in env.data:
        env.fail(
            f"'ab-harness.env.offsets' is for a bootloader keeping its env at raw offsets "
            f"({', '.join(ENV_AT_OFFSETS)}); bootloader '{bootloader}' keeps it in files "
            "(use 'partition' and 'files')"
        )
    files = env.get("files", list)
    counts, what = ENV_FILES[bootloader]
    if len(files) not in counts or not all(isinstance(f, str) for f in files):
        env.fail(f"'ab-harness.env.files' must list {what}")
    if partition is None:
        env.fail("missing key 'ab-harness.env.partition'")
    return EnvLocation(partition, tuple(files), size, (), default_slot)


def _env_offsets(env: Checked, size: int) -> tuple[int, ...]:
    """ab-harness.env.offsets: one or two byte offsets (ints or "0x..." strings),
    block-aligned, whose copies of `size` bytes do not overlap."""
    raw = env.get("offsets", list)
    if len(raw) not in (1, 2):
        env.fail(
            f"'ab-harness.env.offsets' must list one or two offsets (two = redundant copies), "
            f"got {len(raw)}"
        )
    offsets: list[int] = []
    for item in raw:
        try:
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise ValueError
            value = int(item, 0) if isinstance(item, str) else item
        except ValueError:
            env.fail(f"'ab-harness.env.offsets' must hold numbers (e.g. 0x400000), got {item!r}")
        if value < 0 or value % ENV_ALIGN:
            env.fail(
                f"'ab-harness.env.offsets' entry {item!r} must be a non-negative multiple of "
                f"{ENV_ALIGN} (the disk's block size)"
            )
        offsets.append(value)
    if len(offsets) == 2 and abs(offsets[0] - offsets[1]) < size:
        env.fail(
            f"'ab-harness.env.offsets' {offsets[0]:#x} and {offsets[1]:#x} are closer than "
            f"the env size {size:#x}: the two copies would overlap"
        )
    return tuple(offsets)


def _env_size(env: Checked) -> int:
    """ab-harness.env.size: an int, or a string such as "0x4000"; positive."""
    size = env.get("size", (int, str))
    try:
        size_bytes = int(size, 0) if isinstance(size, str) else int(size)
    except ValueError:
        env.fail(f"'ab-harness.env.size' must be a number, got {size!r}")
    if size_bytes <= 0:
        env.fail("'ab-harness.env.size' must be positive")
    return size_bytes
