"""Record one complete update on a QEMU target, every disk write of it logged.

The recording is what the crash-point sweep replays: the disk the log
starts from, the dm-log-writes log of everything the guest (firmware
included) wrote from power-on to the committed update, the log index at
which each phase began, and what a correct device must hold afterwards.

The update under test is a second one: the image's v2 is installed and
committed first (not recorded), so the client has a committed release of
its own before the recorded update to v3 starts, as a device in the field
has. An image without a v3 payload records v2 over the factory release.
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
from harness.target import TargetSpec, sparse_copy

log = logging.getLogger(__name__)

DATA_FILE = "/data/precious-before-update"


@dataclass(frozen=True)
class Recording:
    """One recorded update cycle and what judging a crash state of it needs."""

    base: Path  # the disk as it was at power-on; never modified
    log: Path
    payload: Payload  # the update under test
    before_sha256: str  # of the first payload.size bytes of a slot holding the release before it
    before: str  # that release's name ("v2", or "v1" for the factory image)
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
    """Update `disk` in place to the other slot and commit (not recorded), and
    shut down cleanly; raise HarnessError if the update did not commit."""
    with live_target(spec, image, workdir, bootloader, accel=accel, disk=disk) as live:
        live.strategy.transition("shell")
        shell = Shell(live.target.get_driver("ShellDriver"), pace=live.pace)
        start = live.strategy.last_boots[-1].running_slot if live.strategy.last_boots else None
        _install(live, shell, payload, spec)
        boots = live.strategy.reboot(max_boots=1)
        env = bootloader.env_from_device(shell)
        shell.exec0("sync")
        if bootloader.settled(env, spec.slots) is not None or boots[-1].running_slot == start:
            raise HarnessError(
                f"recording: preparing with '{payload.name}' did not commit (env {env.as_dict()})",
                "the update before the recorded one must commit; check the image",
            )
    shutil.rmtree(workdir, ignore_errors=True)


def _prelude(image: ImageSet, start_slot: str) -> tuple[list[str], str]:
    """The updates made (unrecorded) before the recorded one, and the update under test.

    With a v3 payload: v2 committed first, so the recorded update to v3 starts
    from a committed release of the client's own; from slot B one v2 update
    gets there, from slot A a second v2 update comes back. Without v3: the
    recorded v2 starts from the factory release (slot A), or from a
    committed v2 in B."""
    if "v3" in image.payloads:
        return (["v2"] if start_slot == "B" else ["v2", "v2"]), "v3"
    return ([] if start_slot == "A" else ["v2"]), "v2"


def record_update_cycle(
    spec: TargetSpec,
    image: ImageSet,
    bootloader: Bootloader,
    workdir: Path,
    *,
    accel: str | None = None,
    start_slot: str = "A",
) -> Recording:
    """Bring the image to a committed release on `start_slot` (see `_prelude`;
    not recorded), write a data file, install the update under test, reboot
    into it until it commits, and return the recording.

    Raises HarnessError if an update does not commit: a recording of a
    failed update cannot be the reference the sweep judges against.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    base = workdir / "base.img"
    disk = workdir / "disk.img"
    log_path = workdir / "writes.log"
    prelude, payload_name = _prelude(image, start_slot)
    payload = image.payloads[payload_name]
    sparse_copy(image.file("disk"), base)
    for number, name in enumerate(prelude):
        log.info("recording: committing %s first (not recorded)", name)
        prepare = workdir / f"prepare-{number}"
        _update_once(spec, image, bootloader, prepare, base, image.payloads[name], accel)
    sparse_copy(base, disk)
    phases: list[tuple[int, str]] = [(0, "first boot")]
    started = time.monotonic()
    with live_target(
        spec, image, workdir / "live", bootloader, accel=accel, disk=disk, write_log=log_path
    ) as live:
        live.strategy.transition("shell")
        shell = Shell(live.target.get_driver("ShellDriver"), pace=live.pace)
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
        if bootloader.settled(env, spec.slots) is not None or boots[-1].running_slot == start_slot:
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
        before_sha256=(
            image.payloads[prelude[-1]].sha256
            if prelude
            else str(image.manifest["slot_image_sha256"])
        ),
        before=prelude[-1] if prelude else "v1",
        data_files={DATA_FILE: digest},
        data_synced_at=data_synced_at,
        phases=tuple(phases),
        seconds=seconds,
        boots=total_boots,
        workdir=workdir,
    )
