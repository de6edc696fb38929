"""Record one complete update on a QEMU target, every disk write of it logged.

The recording is what the crash-point sweep replays: the pristine disk the
log starts from, the dm-log-writes log of everything the guest (firmware
included) wrote from power-on to the committed update, the log index at
which each phase began, and what a correct device must hold afterwards.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.bootloaders import Bootloader
from harness.clients import client_for
from harness.errors import HarnessError
from harness.faults.writelog import WriteLog
from harness.images import ImageSet, Payload
from harness.live import LiveTarget, live_target
from harness.machines.qmp import QmpChannel
from harness.push import UsbKeyPusher
from harness.shell import Shell
from harness.target import TargetSpec, _sparse_copy

log = logging.getLogger(__name__)

DATA_FILE = "/data/precious-before-update"


@dataclass(frozen=True)
class Recording:
    """One recorded update cycle and what judging a crash state of it needs."""

    base: Path  # the disk as it was at power-on; never modified
    log: Path
    payload: Payload
    v1_sha256: str  # of the first payload.size bytes of a slot holding v1
    data_files: Mapping[str, str]  # synced before the update: path -> sha256
    data_synced_at: int  # log index from which data_files are durable
    phases: tuple[tuple[int, str], ...]  # (first log index, phase name)
    seconds: float
    boots: int
    workdir: Path = field(repr=False)

    def phase_of(self, index: int) -> str:
        name = self.phases[0][1]
        for start, phase in self.phases:
            if index >= start:
                name = phase
        return name


def _entries(log_path: Path) -> int:
    return len(WriteLog.open(log_path))


def _install(live: LiveTarget, shell: Shell, payload: Payload, spec: TargetSpec) -> None:
    qemu = live.qemu
    if qemu is None or qemu.qmp_socket is None:
        raise HarnessError(f"target '{spec.name}' has no QEMU", "record on a QEMU target")
    with QmpChannel.connect(qemu.qmp_socket) as qmp:
        client = client_for(spec.update_client)
        report = UsbKeyPusher(qmp, shell, qemu.payload_ports, client=client).install(payload)
    if not report.ok:
        raise HarnessError(
            f"recording: installing '{payload.name}' failed: {report.output[-200:]}",
            "the reference update must succeed; check the image",
        )


def _update_once(
    spec: TargetSpec,
    image: ImageSet,
    bootloader: Bootloader,
    workdir: Path,
    disk: Path,
    payload: Payload,
    accel: str | None,
) -> None:
    """Update `disk` in place to the other slot (not recorded), and shut down cleanly."""
    with live_target(spec, image, workdir, bootloader, accel=accel, disk=disk) as live:
        live.strategy.transition("shell")
        shell = Shell(live.target.get_driver("ShellDriver"))
        _install(live, shell, payload, spec)
        live.strategy.reboot(max_boots=1)
        shell.exec0("sync")
    shutil.rmtree(workdir, ignore_errors=True)


def record_update_cycle(
    spec: TargetSpec,
    image: ImageSet,
    bootloader: Bootloader,
    workdir: Path,
    *,
    payload_name: str = "v2",
    accel: str | None = None,
    start_slot: str = "A",
) -> Recording:
    """Boot the pristine image, write a data file, install `payload_name`,
    reboot into it until it commits, and return the recording.

    With start_slot="B" the device is first updated to B (not recorded), so
    the recorded update writes slot A — the slot U-Boot's default env boots.
    Raises HarnessError if the update does not commit: a recording of a
    failed update cannot be the reference the sweep judges against.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    base = workdir / "base.img"
    disk = workdir / "disk.img"
    log_path = workdir / "writes.log"
    payload = image.payloads[payload_name]
    _sparse_copy(image.file("disk"), base)
    if start_slot != "A":
        _update_once(spec, image, bootloader, workdir / "prepare", base, payload, accel)
    _sparse_copy(base, disk)
    phases: list[tuple[int, str]] = [(0, "first boot")]
    started = time.monotonic()
    with live_target(
        spec, image, workdir / "live", bootloader, accel=accel, disk=disk, write_log=log_path
    ) as live:
        live.strategy.transition("shell")
        shell = Shell(live.target.get_driver("ShellDriver"))
        shell.exec0(f"echo 'synced before the update' > {DATA_FILE} && sync")
        digest = shell.exec0(f"sha256sum {DATA_FILE}").split()[0]
        data_synced_at = _entries(log_path)
        phases.append((data_synced_at, "install"))
        _install(live, shell, payload, spec)
        phases.append((_entries(log_path), "reboot into the update"))
        boots = live.strategy.reboot(max_boots=1)
        phases.append((_entries(log_path), "after commit"))
        env = bootloader.env_from_device(shell)
        shell.exec0("sync")
        if env.upgrade_available or boots[-1].running_slot == start_slot:
            raise HarnessError(
                f"recording: the update did not commit (env {env.as_dict()})",
                "the reference update must commit; check the image",
            )
        total_boots = len(live.watcher.history)
    shutil.rmtree(workdir / "live", ignore_errors=True)
    disk.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    log.info(
        "recorded %d log entries over %d boots in %.1f s", _entries(log_path), total_boots, seconds
    )
    return Recording(
        base=base,
        log=log_path,
        payload=payload,
        v1_sha256=str(image.manifest["slot_image_sha256"]),
        data_files={DATA_FILE: digest},
        data_synced_at=data_synced_at,
        phases=tuple(phases),
        seconds=seconds,
        boots=total_boots,
        workdir=workdir,
    )
