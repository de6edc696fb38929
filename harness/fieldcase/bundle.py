"""A field case as plain files: what a device's black box held when it was captured.

A bundle is a folder a person can read and attach to a bug report:

    manifest.json          what was captured, from where, and the sha256 of every raw file
    env/<file>             the raw bytes of every env file, named as on the env partition
    env.txt                the env as the device read it (fw_printenv or its GRUB equivalent)
    cmdline.txt            /proc/cmdline
    partitions.txt         the boot disk's partition table (from sysfs), as text
    partition-table.bin    its first sectors, raw (MBR, or protective MBR + GPT)
    client-status.txt      what the update client said about its state
    client/<path>          the raw bytes of the client's state files
    serial.log             the console as the harness heard it (text)
    README.txt             the above in a few lines, and how to replay it

`load()` checks a bundle before anything uses it; a broken one is one
`BundleError` line naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import HarnessConfigError

FORMAT = "ab-harness-bundle/1"
MANIFEST = "manifest.json"
CAPTURE_HINT = "capture it again with 'ab-harness capture' (or the field_capture fixture)"


class BundleError(HarnessConfigError):
    """A bundle that cannot be used as it is (missing, edited or damaged file)."""


@dataclass(frozen=True)
class RawFile:
    """A file of raw bytes in the bundle, with where it came from on the device."""

    name: str  # its name in its own namespace (env file name, device path)
    file: str  # path inside the bundle
    sha256: str
    bytes: int
    device_path: str


@dataclass(frozen=True)
class SlotState:
    """One slot as captured: what its partition holds and which release that is."""

    partition: int
    device: str
    bytes: int  # the length hashed: the file system's size (ext4 superblock), else the partition
    sha256: str
    version: str | None  # /etc/version of the slot, None when it could not be read
    running: bool


@dataclass(frozen=True)
class StateFile:
    """A file the update client keeps, and the partition it lives on.

    `present` false records that the file did not exist: a replay must not
    have it either (the client acts on its absence too)."""

    path: str
    partition: int | None
    fstype: str | None
    relpath: str | None  # the path inside that partition's file system
    present: bool
    file: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Partition:
    """A partition of the boot disk, in 512-byte sectors (as sysfs gives them)."""

    number: int
    name: str
    start: int
    sectors: int


@dataclass(frozen=True)
class Bundle:
    """A loaded (or just written) bundle; `path` is its folder."""

    path: Path
    target: str
    bootloader: str
    via: str
    captured_at: str
    env_partition: int
    env_size: int
    env_files: tuple[RawFile, ...]
    env_device: Mapping[str, str]
    disk: str
    partitions: tuple[Partition, ...]
    running_slot: str | None
    cmdline: str
    slots: Mapping[str, SlotState]
    client: str
    client_status_exit: int | None
    client_state: tuple[StateFile, ...]
    notes: tuple[str, ...] = field(default=())

    def env_bytes(self) -> dict[str, bytes]:
        """The raw env files by their name on the env partition (checked on load)."""
        return {f.name: (self.path / f.file).read_bytes() for f in self.env_files}

    def state_bytes(self, state: StateFile) -> bytes:
        if state.file is None:
            raise BundleError(f"{self.path}: {state.path} was not present on the device")
        return (self.path / state.file).read_bytes()

    def describe(self) -> str:
        """One paragraph for a person: where it came from and what state it was in."""
        slots = ", ".join(
            f"{name}={s.version or '?'}{' (running)' if s.running else ''}"
            for name, s in self.slots.items()
        )
        env = " ".join(
            f"{k}={self.env_device[k]}"
            for k in ("mender_boot_part", "upgrade_available", "bootcount", "bootlimit")
            if k in self.env_device
        )
        return (
            f"bundle {self.path.name}: {self.target} ({self.bootloader}), captured "
            f"{self.captured_at} over the {self.via}; running slot {self.running_slot}; "
            f"slots {slots}; env {env}"
        )


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_raw(root: Path, rel: str, data: bytes, name: str, device_path: str) -> RawFile:
    """Write raw bytes into the bundle and describe them."""
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return RawFile(name, rel, sha256_bytes(data), len(data), device_path)


def write_manifest(bundle: Bundle) -> Path:
    """Write manifest.json (and env.txt) for a bundle whose raw files are in place."""
    data: dict[str, Any] = {
        "format": FORMAT,
        "target": bundle.target,
        "bootloader": bundle.bootloader,
        "via": bundle.via,
        "captured_at": bundle.captured_at,
        "env": {
            "partition": bundle.env_partition,
            "size": bundle.env_size,
            "files": [asdict(f) for f in bundle.env_files],
            "device_view": "env.txt",
        },
        "disk": {"device": bundle.disk, "partitions": [asdict(p) for p in bundle.partitions]},
        "running_slot": bundle.running_slot,
        "cmdline": bundle.cmdline,
        "slots": {name: asdict(s) for name, s in bundle.slots.items()},
        "client": {
            "name": bundle.client,
            "status_exit": bundle.client_status_exit,
            "status": "client-status.txt",
            "state": [asdict(s) for s in bundle.client_state],
        },
        "notes": list(bundle.notes),
    }
    (bundle.path / "env.txt").write_text(
        "".join(f"{k}={v}\n" for k, v in sorted(bundle.env_device.items()))
    )
    path = bundle.path / MANIFEST
    path.write_text(json.dumps(data, indent=2) + "\n")
    (bundle.path / "README.txt").write_text(
        f"{bundle.describe()}\n"
        + "".join(f"note: {n}\n" for n in bundle.notes)
        + "\nmanifest.json: what was captured and the sha256 of every raw file; env/: the raw\n"
        "env files; env.txt: the env as the device read it; cmdline.txt, partitions.txt,\n"
        "partition-table.bin, client-status.txt, client/ (the client's state files),\n"
        "serial.log (the console as the harness heard it).\n"
        f"Replay it on a fresh VM: ab-harness replay {bundle.path.name}\n"
    )
    return path


def load(path: Path) -> Bundle:
    """Read and check a bundle folder; BundleError names the file and the fix."""
    root = Path(path)
    manifest = root / MANIFEST
    if not root.is_dir():
        raise BundleError(
            f"{root}: no such bundle folder", "give the folder 'ab-harness capture' wrote"
        )
    if not manifest.is_file():
        raise BundleError(
            f"{root} is not a bundle: it has no {MANIFEST}",
            "give the folder 'ab-harness capture' wrote (it holds manifest.json)",
        )
    try:
        data = json.loads(manifest.read_text())
    except ValueError as err:
        raise BundleError(
            f"{manifest}: not valid JSON ({err})", f"restore the file, or {CAPTURE_HINT}"
        ) from None
    reader = _Reader(data, manifest)
    if reader.get("format", str) != FORMAT:
        raise BundleError(
            f"{manifest}: format is {data.get('format')!r}, this harness reads {FORMAT!r}",
            "use the ab-harness version that wrote it, or " + CAPTURE_HINT,
        )
    env = _Reader(reader.get("env", dict), manifest, "env")
    env_files = tuple(_raw(root, manifest, f) for f in env.get("files", list))
    if not env_files:
        raise BundleError(f"{manifest}: env.files is empty", CAPTURE_HINT)
    device_view = root / env.get("device_view", str)
    env_device = dict(line.split("=", 1) for line in _text(device_view).splitlines() if "=" in line)
    disk = _Reader(reader.get("disk", dict), manifest, "disk")
    partitions = tuple(
        Partition(**_fields(p, manifest, "disk.partitions", Partition))
        for p in disk.get("partitions", list)
    )
    slots = {
        str(name): SlotState(**_fields(s, manifest, f"slots.{name}", SlotState))
        for name, s in reader.get("slots", dict).items()
    }
    client = _Reader(reader.get("client", dict), manifest, "client")
    state = tuple(
        StateFile(**_fields(s, manifest, "client.state", StateFile))
        for s in client.get("state", list)
    )
    for item in state:
        if item.present:
            if item.file is None or item.sha256 is None:
                raise BundleError(
                    f"{manifest}: client.state {item.path} is present but names no file",
                    CAPTURE_HINT,
                )
            _check(root / item.file, item.sha256, None)
    return Bundle(
        path=root,
        target=reader.get("target", str),
        bootloader=reader.get("bootloader", str),
        via=reader.get("via", str),
        captured_at=reader.get("captured_at", str),
        env_partition=env.get("partition", int),
        env_size=env.get("size", int),
        env_files=env_files,
        env_device=env_device,
        disk=disk.get("device", str),
        partitions=partitions,
        running_slot=reader.get("running_slot", (str, type(None))),
        cmdline=reader.get("cmdline", str),
        slots=slots,
        client=client.get("name", str),
        client_status_exit=client.get("status_exit", (int, type(None))),
        client_state=state,
        notes=tuple(str(n) for n in reader.get("notes", list)),
    )


class _Reader:
    """Typed access to one manifest mapping; a missing or mistyped key is a BundleError."""

    def __init__(self, data: Any, manifest: Path, where: str = "") -> None:
        if not isinstance(data, dict):
            raise BundleError(
                f"{manifest}: {where or 'the manifest'} is not a JSON object", CAPTURE_HINT
            )
        self.data, self.manifest, self.where = data, manifest, where

    def get(self, key: str, kind: type | tuple[type, ...]) -> Any:
        name = f"{self.where}.{key}" if self.where else key
        if key not in self.data:
            raise BundleError(
                f"{self.manifest}: no '{name}'", f"restore the file, or {CAPTURE_HINT}"
            )
        value = self.data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise BundleError(
                f"{self.manifest}: '{name}' is {value!r}, of the wrong type",
                f"restore the file, or {CAPTURE_HINT}",
            )
        return value


def _fields(data: Any, manifest: Path, where: str, cls: type) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    if not isinstance(data, dict):
        raise BundleError(f"{manifest}: an entry of '{where}' is not a JSON object", CAPTURE_HINT)
    missing = sorted(n for n in names - set(data) if _required(cls, n))
    unknown = sorted(set(data) - names)
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown {', '.join(unknown)}"
        raise BundleError(f"{manifest}: an entry of '{where}' {what}", CAPTURE_HINT)
    return data


def _required(cls: type, name: str) -> bool:
    spec = next(f for f in fields(cls) if f.name == name)
    return spec.default is MISSING and spec.default_factory is MISSING


def _raw(root: Path, manifest: Path, data: Any) -> RawFile:
    raw = RawFile(**_fields(data, manifest, "env.files", RawFile))
    _check(root / raw.file, raw.sha256, raw.bytes)
    return raw


def _check(path: Path, sha256: str, size: int | None) -> None:
    """A raw file must be there with the bytes the manifest recorded."""
    if not path.is_file():
        raise BundleError(
            f"{path}: missing from the bundle (the manifest lists it)",
            f"copy the whole bundle folder, or {CAPTURE_HINT}",
        )
    data = path.read_bytes()
    if (size is not None and len(data) != size) or sha256_bytes(data) != sha256:
        raise BundleError(
            f"{path}: its bytes are not the ones captured ({len(data)} bytes, sha256 "
            f"{sha256_bytes(data)[:12]}…; the manifest says {size if size is not None else '?'} "
            f"bytes, {sha256[:12]}…)",
            "raw files must stay as captured (edit a copy of the env with fw_setenv on a "
            "replayed device instead); restore the file, or " + CAPTURE_HINT,
        )


def _text(path: Path) -> str:
    if not path.is_file():
        raise BundleError(
            f"{path}: missing from the bundle (the manifest lists it)",
            f"copy the whole bundle folder, or {CAPTURE_HINT}",
        )
    return path.read_text(errors="replace")
