"""Capture a device's black box into a bundle, over its shell alone.

Everything is read on the device (console or SSH), never from the host's
view of its disk, so the same capture works on a QEMU target, a virtual
board and a real one: the raw env files where the bootloader contract says
they are, the device's own reading of them, /proc/cmdline, the partition
table, the sha256 and version of each slot, the update client's state, and
the serial log the harness has. Nothing is written to the device's disks.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from harness.bootloaders import Bootloader
from harness.clients import UpdateClient
from harness.device.device_files import BLOCK, read_bytes, sha256_of
from harness.device.shell import ShellLike
from harness.errors import DeviceError, HarnessConfigError
from harness.fieldcase.bundle import (
    Bundle,
    RawFile,
    SlotState,
    StateFile,
    load,
    write_manifest,
    write_raw,
)
from harness.fieldcase.devicemap import DiskLayout, mounted, read_layout
from harness.fieldcase.ext4 import fs_bytes

log = logging.getLogger(__name__)

GPT_SECTORS = 34  # protective MBR, GPT header, 32 sectors of entries
VERSION_FILE = "etc/version"  # the release a slot holds (the reference images' convention)
# TCG guests hash at ~8 MB/s: a 40 MiB slot takes seconds, a board's far longer.
HASH_TIMEOUT_S = 300.0


@runtime_checkable
class KeepsState(Protocol):
    """An update client that names the files it keeps its state in (optional).

    A replay restores them (or their absence): a client decides what to do
    at boot from them, e.g. whether the running slot is the one it installed."""

    @property
    def state_paths(self) -> tuple[str, ...]: ...


def capture(
    shell: ShellLike,
    out: Path,
    *,
    target: str,
    bootloader_kind: str,
    bootloader: Bootloader,
    slots: Mapping[str, int],
    client: UpdateClient,
    serial_log: str | None = None,
    via: str = "console",
) -> Bundle:
    """Read the device's black box into the folder `out` (created; must be empty)."""
    if out.exists() and any(out.iterdir()):
        raise HarnessConfigError(
            f"{out} exists and is not empty", "give a new folder for the bundle"
        )
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    phases: list[str] = []  # where the time went (hashing a slot dominates under TCG)
    last = started

    def phase(name: str) -> None:
        nonlocal last
        now = time.monotonic()
        phases.append(f"{name} {now - last:.1f} s")
        last = now

    layout = read_layout(shell)
    cmdline = shell.exec0("cat /proc/cmdline").strip()
    (out / "cmdline.txt").write_text(cmdline + "\n")
    phase("layout")
    env_files = _env_files(shell, out, layout, bootloader)
    phase("env files")
    notes: list[str] = []
    try:
        env_device = dict(bootloader.env_from_device(shell).vars)
    except DeviceError as err:
        env_device = {}
        notes.append(f"the device could not read its env: {err.cause}")
    phase("env device")
    _partition_table(shell, out, layout)
    phase("partition table")
    slot_states = {}
    for name, number in sorted(slots.items()):
        slot_states[name] = _slot(shell, layout, name, number)
        phase(f"slot {name}")
    status = client.status(shell)
    (out / "client-status.txt").write_text(f"$ {status.command}\n{status.output}\n")
    state = _client_state(shell, out, layout, client)
    phase("client")
    if serial_log is not None:
        (out / "serial.log").write_text(serial_log)
    running = next((n for n, s in slot_states.items() if s.running), None)
    bundle = Bundle(
        path=out,
        target=target,
        bootloader=bootloader_kind,
        via=via,
        captured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        env_partition=bootloader.location.partition,
        env_size=bootloader.location.size,
        env_files=env_files,
        env_device=env_device,
        disk=layout.disk,
        partitions=layout.partitions,
        running_slot=running,
        cmdline=cmdline,
        slots=slot_states,
        client=client.name,
        client_status_exit=status.exit_code,
        client_state=state,
        notes=tuple(notes),
    )
    write_manifest(bundle)
    log.info("captured %s in %.1f s: %s", out, time.monotonic() - started, ", ".join(phases))
    return load(out)


def _env_files(
    shell: ShellLike, out: Path, layout: DiskLayout, bootloader: Bootloader
) -> tuple[RawFile, ...]:
    """The raw bytes of every env file the contract names, read where the device mounts them."""
    where = bootloader.location
    files = []
    with mounted(shell, layout, where.partition, "env") as point:
        for name in where.files:
            path = f"{point.rstrip('/')}/{name}"
            files.append(write_raw(out, f"env/{name}", read_bytes(shell, path), name, path))
    return tuple(files)


def _partition_table(shell: ShellLike, out: Path, layout: DiskLayout) -> None:
    """The first sectors raw (a protective MBR brings the GPT with it) and sysfs's table as text."""
    first = read_bytes(shell, layout.disk, 0, BLOCK)
    gpt = first[450] == 0xEE  # the first MBR entry's type: protective MBR
    raw = read_bytes(shell, layout.disk, 0, GPT_SECTORS * BLOCK) if gpt else first
    (out / "partition-table.bin").write_bytes(raw)
    lines = [f"# {layout.disk} ({'GPT' if gpt else 'MBR'}), 512-byte sectors, from sysfs"]
    lines.append(f"{'number':>6} {'name':<12} {'start':>10} {'sectors':>10} mounted")
    for p in layout.partitions:
        mount = layout.mounts.get(f"/dev/{p.name}")
        where = f"{mount[0]} ({mount[1]})" if mount else "-"
        lines.append(f"{p.number:>6} {p.name:<12} {p.start:>10} {p.sectors:>10} {where}")
    (out / "partitions.txt").write_text("\n".join(lines) + "\n")


def _slot(shell: ShellLike, layout: DiskLayout, name: str, number: int) -> SlotState:
    """sha256 over the slot's file system (its size from the ext4 superblock, so it
    compares with the payload that was written) and the release it holds."""
    device = layout.device(number)
    sectors = next(p.sectors for p in layout.partitions if p.number == number)
    length = fs_bytes(read_bytes(shell, device, 1024, 1024)) or sectors * BLOCK
    digest = sha256_of(shell, device, length, timeout_s=HASH_TIMEOUT_S)
    running = number == layout.root
    return SlotState(number, device, length, digest, _version(shell, layout, number, name), running)


def _version(shell: ShellLike, layout: DiskLayout, number: int, name: str) -> str | None:
    if number == layout.root:
        code, out = shell.exec(f"cat /{VERSION_FILE}")
        return out.strip() or None if code == 0 else None
    try:
        with mounted(shell, layout, number, f"slot-{name}") as point:
            code, out = shell.exec(f"cat {shlex.quote(point)}/{VERSION_FILE}")
    except DeviceError as err:  # a torn slot: its hash still says what it holds
        log.info("slot %s: no version (%s)", name, err.cause)
        return None
    return out.strip() or None if code == 0 else None


def _client_state(
    shell: ShellLike, out: Path, layout: DiskLayout, client: UpdateClient
) -> tuple[StateFile, ...]:
    paths = client.state_paths if isinstance(client, KeepsState) else ()
    found = []
    for path in paths:
        where = layout.mount_of(path)
        partition, fstype, rel = where if where is not None else (None, None, None)
        code, _ = shell.exec(f"[ -f {shlex.quote(path)} ]")
        if code != 0:
            found.append(StateFile(path, partition, fstype, rel, present=False))
            continue
        raw = write_raw(out, f"client{path}", read_bytes(shell, path), path, path)
        found.append(StateFile(path, partition, fstype, rel, True, raw.file, raw.sha256))
    return tuple(found)
