"""Target descriptions: a labgrid environment YAML plus an `ab-harness:` section.

A target file is an ordinary labgrid environment (targets, drivers, tools,
images) so a physical board differs from a QEMU target only in its YAML.
The `ab-harness:` section says what labgrid does not know: which image
recipe feeds it, where the bootloader keeps its env, which partition is
which slot. Every key is validated on load; errors name the file and key.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness import diskimage
from harness.errors import EnvironmentMissing, HarnessConfigError
from harness.hostports import fill_host_ports
from harness.images import ImageSet
from harness.userfiles import private_copy
from harness.userreleases import Device, Release, parse_device, parse_releases

IMAGE_REF = "@image:"
# Ends at the line's end, so a line split across console reads is not
# matched before its last character has arrived.
# Update clients a target may name (harness.clients has their adapters;
# listed here so a YAML is checked without importing them).
KNOWN_CLIENTS = ("ab-update", "mender")
DEFAULT_CLIENT = "ab-update"
DESIGNS = ("hardened", "stock")
# Deliveries a target may name (harness.delivery has them; listed here so a
# YAML is checked without importing them). QEMU targets default to hotplug.
KNOWN_DELIVERIES = ("hotplug", "network", "ssh", "usbstorage")
DEFAULT_READY_MARKER = r"ab-init: ready slot=(?P<slot>\w+) version=(?P<version>\S+)(?=[\r\n])"
QEMU_PACKAGES = {
    "qemu-system-aarch64": "qemu-system-arm",
    "qemu-system-arm": "qemu-system-arm",
    "qemu-system-x86_64": "qemu-system-x86",
}


# The `bootloader:` kinds harness.bootloaders implements, and where each keeps
# its env: files on a partition (ENV_FILES) or raw offsets of the disk (ENV_AT_OFFSETS).
BOOTLOADERS = ("uboot", "grub-mender", "uboot-mender", "uboot-rauc", "grub-rauc", "uboot-swupdate")
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


def default_targets_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "targets"


@dataclass(frozen=True)
class EnvLocation:
    """Where the bootloader env lives: files on a partition of the boot disk, or
    raw byte offsets of the boot disk itself (`offsets`, one per copy, in
    fw_env.config's order; then `partition` is 0 and `files` is empty)."""

    partition: int
    files: tuple[str, ...]
    size: int
    offsets: tuple[int, ...] = ()

    @property
    def at_offsets(self) -> bool:
        return bool(self.offsets)

    @property
    def copy_names(self) -> tuple[str, ...]:
        """How each copy is named in a report: its file, or its offset in hex."""
        return tuple(f"{o:#x}" for o in self.offsets) if self.offsets else self.files


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
    ready_marker: str
    labgrid: Mapping[str, Any] = field(repr=False)
    update_client: str = "ab-update"
    delivery: str | None = None  # None: the target offers no way to push a payload
    delivery_options: Mapping[str, Any] = field(default_factory=dict)
    board: BoardStorage | None = None
    # A virtual board (harness.rig): started per test, its ports filled into the resources.
    rig: Mapping[str, Any] | None = None
    # The harness acquires the target's RemotePlace around each test, waiting this
    # long while someone else holds it (harness.place); None: the user acquires it.
    acquire_place_s: float | None = None
    # Placeholder port numbers in the labgrid section, each replaced by a free
    # host port per test (harness.hostports): a forwarded port and its user agree.
    host_ports: tuple[int, ...] = ()
    # Which design of the A/B stack the device runs: "stock" (the updater and its
    # bootloader integration as shipped) or "hardened" (the reference image's
    # fixes). Known findings (harness.findings) apply to one or the other.
    design: str = "hardened"
    # The user's own releases by name (harness.userreleases.Release), and the
    # device's conventions the bad releases are derived with.
    releases: Mapping[str, Release] = field(default_factory=dict)
    device: Device = field(default_factory=Device)

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


class _Section:
    """Typed access to one YAML mapping, with errors that name file and key."""

    def __init__(self, data: Any, where: str, path: Path) -> None:
        self.where = where
        self.path = path
        if not isinstance(data, dict):
            self.fail(f"'{where}' must be a mapping, got {type(data).__name__}")
        self.data: dict[str, Any] = data

    def fail(self, cause: str) -> None:
        raise HarnessConfigError(f"{self.path}: {cause}", f"fix the target YAML ({self.where})")

    def reject_unknown(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            self.fail(
                f"unknown key '{self.where}.{unknown[0]}' (allowed: {', '.join(sorted(allowed))})"
            )

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                self.fail(f"missing key '{self.where}.{key}'")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # YAML's true/false are ints to isinstance; a number key must not accept them.
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.fail(f"'{self.where}.{key}' must be {names}, got {value!r}")
        return value


def load_target(name_or_path: str, targets_dir: Path | None = None) -> TargetSpec:
    """Load and validate a target file; raise HarnessConfigError naming file and key."""
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
    top = _Section(data, "<top>", path)
    top.reject_unknown({"targets", "tools", "images", "paths", "options", "imports", "ab-harness"})
    targets = _Section(top.get("targets", dict), "targets", path)
    if list(targets.data) != ["main"]:
        targets.fail("must define exactly one labgrid target, named 'main'")
    main = _Section(targets.data["main"], "targets.main", path)
    drivers = main.get("drivers", (dict, list))
    if isinstance(drivers, list):
        if not all(isinstance(d, dict) for d in drivers):
            main.fail("'targets.main.drivers' must be a mapping or a list of mappings")
        drivers = {k: v for d in drivers for k, v in d.items()}
    if not any("Strategy" in name for name in drivers):
        main.fail("no strategy in 'targets.main.drivers' (add ABBootStrategy)")

    ab = _Section(top.get("ab-harness", dict), "ab-harness", path)
    ab.reject_unknown(
        {
            "image",
            "bootloader",
            "env",
            "slots",
            "boot_timeout_s",
            "ready_marker",
            "update_client",
            "delivery",
            "board",
            "rig",
            "acquire_place_s",
            "host_ports",
            "design",
            "releases",
            "device",
        }
    )
    bootloader = ab.get("bootloader", str)
    if bootloader not in BOOTLOADERS:
        ab.fail(f"'ab-harness.bootloader' is '{bootloader}'; supported: {', '.join(BOOTLOADERS)}")
    env_location = _env_location(_Section(ab.get("env", dict), "ab-harness.env", path), bootloader)
    slots = ab.get("slots", dict)
    if len(slots) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in slots.values()
    ):
        ab.fail(
            "'ab-harness.slots' must map two slot names to partition numbers, e.g. {A: 2, B: 3}"
        )
    if len(set(slots.values())) != len(slots):
        number = next(v for v in slots.values() if list(slots.values()).count(v) > 1)
        ab.fail(f"'ab-harness.slots' gives both slots partition {number} ({slots})")
    ready = ab.get("ready_marker", str, DEFAULT_READY_MARKER)
    try:
        re.compile(ready)
    except re.error as err:
        ab.fail(f"'ab-harness.ready_marker' is not a valid regex: {err}")
    timeout = ab.get("boot_timeout_s", (int, float), 60)
    if timeout <= 0:
        ab.fail("'ab-harness.boot_timeout_s' must be positive")
    delivery, delivery_options = _delivery(ab, "ABQEMUDriver" in drivers)
    design = ab.get("design", str, "hardened")
    if design not in DESIGNS:
        ab.fail(f"'ab-harness.design' is '{design}'; supported: {', '.join(DESIGNS)}")
    labgrid = {k: v for k, v in data.items() if k != "ab-harness"}
    return TargetSpec(
        name=path.stem,
        path=path,
        image=ab.get("image", str, None),
        bootloader=bootloader,
        env=env_location,
        slots={str(k): int(v) for k, v in slots.items()},
        boot_timeout_s=float(timeout),
        ready_marker=ready,
        update_client=_update_client(ab),
        labgrid=labgrid,
        delivery=delivery,
        delivery_options=delivery_options,
        board=_board(ab, path),
        rig=ab.get("rig", dict, None),
        acquire_place_s=ab.get("acquire_place_s", (int, float), None),
        host_ports=_host_ports(ab),
        design=design,
        releases=parse_releases(ab.get("releases", dict, {}), path),
        device=parse_device(ab.get("device", dict, {}), path),
    )


def _host_ports(ab: _Section) -> tuple[int, ...]:
    """ab-harness.host_ports: placeholder port numbers replaced per test (harness.hostports)."""
    ports = ab.get("host_ports", list, [])
    if not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports):
        ab.fail("'ab-harness.host_ports' must list port numbers, e.g. [2222]")
    return tuple(ports)


def _delivery(ab: _Section, qemu: bool) -> tuple[str | None, dict[str, Any]]:
    """ab-harness.delivery: a name, or {method: NAME, option: value, ...}."""
    raw = ab.get("delivery", (str, dict), "hotplug" if qemu else None)
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
    return str(method), options


def _board(ab: _Section, path: Path) -> BoardStorage | None:
    """ab-harness.board: how the device names its disk (for targets without a host view)."""
    if "board" not in ab.data:
        return None
    board = _Section(ab.data["board"], "ab-harness.board", path)
    board.reject_unknown({"disk", "env_dir", "partition_prefix"})
    return BoardStorage(
        board.get("disk", str), board.get("env_dir", str), board.get("partition_prefix", str, "")
    )


def _update_client(ab: _Section) -> str:
    """ab-harness.update_client: one of the clients the harness has an adapter for."""
    client = ab.get("update_client", str, DEFAULT_CLIENT)
    if client not in KNOWN_CLIENTS:
        ab.fail(f"'ab-harness.update_client' is '{client}'; supported: {', '.join(KNOWN_CLIENTS)}")
    return str(client)


def _env_location(env: _Section, bootloader: str) -> EnvLocation:
    """ab-harness.env: files on a partition, or raw offsets of the disk, as the
    bootloader kind keeps it."""
    if bootloader in ENV_AT_OFFSETS:
        env.reject_unknown({"offsets", "size", "device"})
        size = _env_size(env)
        device = env.get("device", str, "disk")
        if device != "disk":
            env.fail(
                f"'ab-harness.env.device' is {device!r}; supported: disk (offsets of the boot disk)"
            )
        return EnvLocation(0, (), size, _env_offsets(env, size))
    if "offsets" in env.data:
        env.fail(
            f"'ab-harness.env.offsets' is for a bootloader keeping its env at raw offsets "
            f"({', '.join(ENV_AT_OFFSETS)}); bootloader '{bootloader}' keeps it in files "
            "(use 'partition' and 'files')"
        )
    env.reject_unknown({"partition", "files", "size"})
    files = env.get("files", list)
    counts, what = ENV_FILES[bootloader]
    if len(files) not in counts or not all(isinstance(f, str) for f in files):
        env.fail(f"'ab-harness.env.files' must list {what}")
    return EnvLocation(env.get("partition", int), tuple(files), _env_size(env))


def _env_offsets(env: _Section, size: int) -> tuple[int, ...]:
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


def _env_size(env: _Section) -> int:
    """ab-harness.env.size: an int, or a string such as "0x4000"; positive."""
    size = env.get("size", (int, str))
    try:
        size_bytes = int(size, 0) if isinstance(size, str) else int(size)
    except ValueError:
        env.fail(f"'ab-harness.env.size' must be a number, got {size!r}")
    if size_bytes <= 0:
        env.fail("'ab-harness.env.size' must be positive")
    return size_bytes


EXT4_MAGIC_OFFSET = 1080  # superblock at 1024, s_magic at +56
EXT4_MAGIC = b"\x53\xef"  # 0xEF53 little-endian


def check_against_disk(spec: TargetSpec, disk: Path) -> None:
    """Check the YAML's partition map against the disk image before anything boots.

    The slots must be ext4 partitions of the disk, the env partition must
    exist and hold the env files.  Raises HarnessConfigError naming the YAML
    key that does not fit the disk.
    """
    table = {p.number: p for p in diskimage.partitions(disk)}
    present = _ranges(sorted(table))

    def fail(key: str, cause: str, fix: str) -> None:
        raise HarnessConfigError(f"{spec.path}: ab-harness.{key} {cause}", fix)

    for name, number in spec.slots.items():
        if number not in table:
            fail(
                f"slots.{name}",
                f"is partition {number} but {disk.name} has partitions {present}",
                f"set ab-harness.slots.{name} to the partition of slot {name}'s rootfs",
            )
        with disk.open("rb") as f:
            f.seek(table[number].start_bytes + EXT4_MAGIC_OFFSET)
            magic = f.read(len(EXT4_MAGIC))
        if magic != EXT4_MAGIC:
            fail(
                f"slots.{name}",
                f"is partition {number} of {disk.name}, which holds no ext4 file system "
                f"(magic at byte {EXT4_MAGIC_OFFSET} is {magic.hex() or 'past the end'}, not 53ef)",
                f"set ab-harness.slots.{name} to the partition of slot {name}'s ext4 rootfs",
            )
    env = spec.env
    if env.at_offsets:
        _check_env_offsets(spec, disk, table.values(), fail)
        return
    if env.partition not in table:
        fail(
            "env.partition",
            f"is {env.partition} but {disk.name} has partitions {present}",
            "set ab-harness.env.partition to the partition holding the env files",
        )
    try:
        blobs = diskimage.read_partition_files(disk, env.partition, env.files)
    except HarnessConfigError as err:
        fail(
            "env.files",
            f"{list(env.files)} cannot be read from partition {env.partition} of {disk.name} "
            f"({err.cause.split(': ', 2)[-1]})",
            "list the env files of the boot partition (`mdir -i DISK@@OFFSET ::`) "
            "or fix ab-harness.env.partition",
        )
    for name, blob in zip(env.files, blobs, strict=True):
        if len(blob) < env.size:
            fail(
                "env.size",
                f"is {env.size:#x} but {name} in partition {env.partition} of {disk.name} "
                f"holds only {len(blob):#x} bytes",
                "set ab-harness.env.size to the size the bootloader was built with",
            )


def _check_env_offsets(
    spec: TargetSpec,
    disk: Path,
    partitions: Iterable[diskimage.Partition],
    fail: Callable[[str, str, str], None],
) -> None:
    """Each env copy must lie inside the disk and outside every partition."""
    disk_size = disk.stat().st_size
    for offset in spec.env.offsets:
        end = offset + spec.env.size
        if end > disk_size:
            fail(
                "env.offsets",
                f"has a copy at {offset:#x}..{end:#x}, past the end of {disk.name} "
                f"({disk_size:#x} bytes)",
                "set ab-harness.env.offsets to the bootloader's CONFIG_ENV_OFFSET(_REDUND)",
            )
        for part in partitions:
            start = part.start_bytes
            stop = start + part.size_bytes
            if offset < stop and start < end:
                fail(
                    "env.offsets",
                    f"has a copy at {offset:#x}..{end:#x} inside partition {part.number} "
                    f"of {disk.name} ({start:#x}..{stop:#x})",
                    "set ab-harness.env.offsets to the bootloader's CONFIG_ENV_OFFSET(_REDUND)",
                )


def _ranges(numbers: list[int]) -> str:
    """1, 2, 3, 4 → "1-4"; 1, 2, 5 → "1-2, 5"."""
    if not numbers:
        return "none"
    runs: list[list[int]] = [[numbers[0], numbers[0]]]
    for n in numbers[1:]:
        if n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)


@dataclass(frozen=True)
class MaterializedTarget:
    """A target made concrete for one test: labgrid YAML and per-test images."""

    spec: TargetSpec
    labgrid_config: Path
    images: Mapping[str, Path]

    @property
    def disk(self) -> Path | None:
        return self.images.get("disk")


def materialize(
    spec: TargetSpec,
    workdir: Path,
    image: ImageSet | None,
    writable: tuple[str, ...] = ("disk",),
    overrides: Mapping[str, Path] | None = None,
) -> MaterializedTarget:
    """Write a labgrid environment for one test into workdir.

    `@image:KEY` entries point into the built image; those named in
    `writable` are copied first, so every test starts from a pristine disk
    and the cache is never modified; a writable key named by path (the
    user's own disk) gets a private copy too (harness.userfiles).
    `overrides` replace an image key by a file the caller owns (e.g. a
    crash-state disk), used as it is.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = {k: _plain(v) for k, v in spec.labgrid.items()}
    images: dict[str, Path] = {}
    for key, ref in dict(config.get("images", {})).items():
        if overrides and key in overrides:
            images[key] = overrides[key]
            config["images"][key] = str(overrides[key])
        elif isinstance(ref, str) and ref.startswith(IMAGE_REF):
            if image is None:
                raise HarnessConfigError(
                    f"{spec.path}: images.{key} uses {IMAGE_REF} but "
                    "'ab-harness.image' names no recipe",
                    "add 'image: <recipe>' under ab-harness",
                )
            source = image.file(ref[len(IMAGE_REF) :])
            if key in writable:
                dest = workdir / source.name
                _sparse_copy(source, dest)
                source = dest
            images[key] = source
            config["images"][key] = str(source)
        else:
            # labgrid resolves a relative path against the YAML that names it;
            # the written YAML lives in workdir, so anchor it to the target file.
            anchored = spec.path.parent / Path(str(ref)).expanduser()
            if key in writable:  # the user's own file: never written (harness.userfiles)
                anchored = private_copy(anchored, workdir)
            images[key] = anchored
            config["images"][key] = str(anchored)
    if "tools" in config:
        config["tools"] = resolve_tools(spec)
    config = fill_host_ports(config, spec.host_ports)  # a free host port per test
    out = workdir / "labgrid-env.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return MaterializedTarget(spec, out, images)


def resolve_tools(spec: TargetSpec) -> dict[str, str]:
    """The YAML's `tools:` as absolute paths; EnvironmentMissing names one that is not installed."""
    resolved: dict[str, str] = {}
    for key, tool in dict(spec.labgrid.get("tools") or {}).items():
        found = shutil.which(str(tool))
        if found is None:
            package = QEMU_PACKAGES.get(Path(str(tool)).name, Path(str(tool)).name)
            raise EnvironmentMissing(
                f"target '{spec.name}' needs '{tool}' (tools.{key}), which is not installed",
                f"apt-get install {package} (or run 'make setup')",
            )
        resolved[key] = found
    return resolved


def disk_of(spec: TargetSpec, image: ImageSet | None) -> Path | None:
    """The disk image the YAML's `images.disk` names (in the built image, or a path)."""
    ref = dict(spec.labgrid.get("images") or {}).get("disk")
    if ref is None:
        return None
    if isinstance(ref, str) and ref.startswith(IMAGE_REF):
        return image.file(ref[len(IMAGE_REF) :]) if image is not None else None
    return spec.path.parent / Path(str(ref)).expanduser()


def _plain(value: Any) -> Any:
    # Deep copy through YAML-safe types so the spec's own data is never mutated.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _sparse_copy(source: Path, dest: Path) -> None:
    """Copy an image keeping holes (and sharing blocks where the filesystem can)."""
    proc = subprocess.run(
        ["cp", "--sparse=always", "--reflink=auto", str(source), str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise HarnessConfigError(
            f"cannot copy image {source} to {dest}: {proc.stderr.strip()}",
            "check free disk space and permissions of the results directory",
        )
