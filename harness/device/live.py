"""A target brought to life: labgrid environment, console recording and boot
watcher wired together, and torn down (QEMU stopped) whatever happens.

The pytest plugin and the benchmark both start targets through here, so
what is measured is what the tests run.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.bootloaders import LINE_START, BootEnv, Bootloader, read_under
from harness.device.boot import ABBootStrategy, BootWatcher
from harness.device.console import tee_console
from harness.device.pace import Pace
from harness.device.serial_log import SerialRecorder
from harness.envformat import EnvCorrupt
from harness.errors import HarnessConfigError, HarnessError
from harness.images import ImageSet
from harness.judge.oracle import ContractJudge
from harness.lab.labcheck import coordinator_address, explain_labgrid_error
from harness.lab.place import acquired_place
from harness.lab.rig import VirtualRig, fill_resources, virtual_rig
from harness.machines.qemu import ABQEMUDriver
from harness.targets.target import TargetSpec, check_against_disk, materialize

log = logging.getLogger(__name__)


@dataclass
class LiveTarget:
    """A labgrid target with its recorders, ready to be powered on."""

    target: Any
    spec: TargetSpec
    disk: Path | None
    recorder: SerialRecorder
    watcher: BootWatcher
    console_hooks: list[Callable[[bytes], None]] = field(default_factory=list)
    """Called with every chunk read from the console, after the recorder
    (fault triggers watch the console here)."""
    rig: VirtualRig | None = None
    """The virtual board rig this target runs on (targets with `ab-harness.rig`)."""
    pace: Pace = field(default_factory=Pace)
    """The pace its deadlines follow (the boot watcher's; shells made for it share it)."""

    def cut_power_now(self) -> dict[str, object] | None:
        """Cut the power at once, from any context (a console hook mid-read);
        the facts of the cut, or None when the device was not powered.

        QEMU: SIGKILL. A board: its power driver's `off()` (a network switch
        answers once the outlet is off), timed; the watcher is told, because a
        lab's console stays open when the board goes dark."""
        qemu = self.qemu
        if qemu is not None:
            pid = qemu.kill_now()
            return None if pid is None else {"qemu_pid_killed": pid}
        power = self.target.get_driver("PowerProtocol", activate=False)
        started = time.monotonic()
        power.off()
        facts: dict[str, object] = {
            "power_driver": type(power).__name__,
            "power_off_call_ms": round((time.monotonic() - started) * 1000, 3),
        }
        self.watcher.power_lost()
        if self.rig is not None and self.rig.switch.log:
            switched = self.rig.switch.log[-1]
            facts["switch_effect"] = switched.effect
            facts["switch_off_after_ms"] = round((switched.at - started) * 1000, 3)
        return facts

    @property
    def strategy(self) -> ABBootStrategy:
        strategy: ABBootStrategy = self.target.get_driver(ABBootStrategy)
        return strategy

    @property
    def qemu(self) -> ABQEMUDriver | None:
        driver: ABQEMUDriver | None = find_driver(self.target, ABQEMUDriver)
        return driver


@dataclass
class DiskProbe:
    """Reads the env from the target's disk image, pausing QEMU when asked so
    that the read sees one consistent moment (the guest writes nothing then)."""

    bootloader: Bootloader
    disk: Path
    qemu: ABQEMUDriver | None
    # The target's slots: each env is read under the contract (`read_under`),
    # so a boot's env answers `boot_part` and `pending` whatever the contract.
    slots: Mapping[str, int] | None = None

    def env_now(self, label: str, *, pause: bool) -> BootEnv | None:
        paused = pause and self.qemu is not None and self.qemu.pause()
        try:
            env = self.bootloader.env_from_image(self.disk)
            return read_under(self.bootloader, env, self.slots) if self.slots else env
        except EnvCorrupt as err:
            # No valid copy is a state the contract has an answer for (defaults).
            return BootEnv({}, f"host:{self.disk.name}", {"copy": "none", "error": str(err)})
        except HarnessConfigError as err:
            # The file system holding the env is one the host cannot decode (a FAT
            # chain a power cut left half written): the bootloader still boots it,
            # and the oracle counts the boot as one it could not judge.
            log.warning("env %s: not readable on the host: %s", label, err)
            return None
        finally:
            if paused and self.qemu is not None:
                self.qemu.resume()


def ready_pattern(spec: TargetSpec) -> re.Pattern[bytes]:
    """The target's ready line (`device.ready_marker`) as a console pattern."""
    return re.compile(LINE_START + spec.ready_marker.encode())


def health_pattern(spec: TargetSpec) -> re.Pattern[bytes] | None:
    """The target's health verdict lines as one console pattern (None: it prints none)."""
    regex = spec.device.health_pattern()
    return None if regex is None else re.compile(LINE_START + regex.encode())


def find_driver(target: Any, cls: type[Any]) -> Any:
    """The target's driver of the given class, or None (without activating it)."""
    for driver in target.drivers:
        if isinstance(driver, cls):
            return driver
    return None


@contextmanager
def live_target(
    spec: TargetSpec,
    image: ImageSet | None,
    workdir: Path,
    bootloader: Bootloader,
    *,
    accel: str | None = None,
    boot_timeout_s: float | None = None,
    judge: bool = True,
    disk: Path | None = None,
    write_log: Path | None = None,
    pace: Pace | None = None,
) -> Iterator[LiveTarget]:
    """Create the labgrid target for spec in workdir; on exit, every driver is
    deactivated, which stops QEMU (also on errors and KeyboardInterrupt).

    Every boot is judged against the bootloader contract (the oracle); with
    `judge`, a violation raises ContractViolation. `disk` boots that file
    instead of a copy of the image's disk; `write_log` records every write
    to the disk from power-on (QEMU targets). Deadlines follow `pace` (one
    per target and process keeps what earlier boots showed; default: a new
    one, following this host's run queue)."""
    with contextlib.ExitStack() as stack:
        run_spec, rig = stack.enter_context(_rig_for(spec, image, workdir))
        place = remote_place(spec)
        if place is not None and spec.acquire_place_s is not None:
            address = coordinator_address(spec)
            stack.enter_context(acquired_place(address, place, spec.acquire_place_s))
        live = stack.enter_context(
            _live(run_spec, image, workdir, bootloader, accel, boot_timeout_s, judge, disk,
                  write_log, pace or Pace())
        )  # fmt: skip
        live.rig = rig
        live.spec = spec
        yield live


def _board_env_reader(
    spec: TargetSpec, bootloader: Bootloader, target: Any
) -> Callable[[], BootEnv | None] | None:
    """For a board (`ab-harness.board`): the env files copied over its shell
    and parsed, so the oracle knows the env a boot after a reboot starts from."""
    board = spec.board
    from_files = getattr(bootloader, "env_from_files", None)
    if board is None or from_files is None:
        return None

    def read() -> BootEnv | None:
        from harness.device.device_files import read_bytes
        from harness.device.shell import Shell

        shell = Shell(target.get_driver("ShellDriver", activate=False))
        paths = [f"{board.env_dir.rstrip('/')}/{name}" for name in spec.env.files]
        try:
            blobs = [read_bytes(shell, path, 0, spec.env.size) for path in paths]
            env: BootEnv = from_files(blobs, f"device:{'+'.join(paths)}")
        except EnvCorrupt as err:  # a state the contract has an answer for (defaults)
            return BootEnv({}, "device", {"copy": "none", "error": str(err)})
        return env

    return read


def remote_place(spec: TargetSpec) -> str | None:
    """The name of the target's RemotePlace resource, if it has one."""
    section = spec.labgrid.get("targets", {}).get("main", {}).get("resources") or {}
    entries = section.items() if isinstance(section, dict) else [
        kv for entry in section if isinstance(entry, dict) for kv in entry.items()
    ]  # fmt: skip
    for cls, args in entries:
        if cls == "RemotePlace" and isinstance(args, dict) and args.get("name"):
            return str(args["name"])
    return None


@contextmanager
def _rig_for(
    spec: TargetSpec, image: ImageSet | None, workdir: Path
) -> Iterator[tuple[TargetSpec, VirtualRig | None]]:
    """A virtual board target's rig, running for the with-block, and the spec
    with its addresses filled in; other targets pass through."""
    if spec.rig is None:
        yield spec, None
        return
    if image is None:
        raise HarnessError(
            f"target '{spec.name}' is a virtual board (ab-harness.rig) with no image",
            "name the image the board runs with ab-harness.image",
        )
    with virtual_rig(image, workdir / "rig", spec.rig) as rig:
        yield replace(spec, labgrid=fill_resources(spec.labgrid, rig)), rig


@contextmanager
def _live(
    spec: TargetSpec,
    image: ImageSet | None,
    workdir: Path,
    bootloader: Bootloader,
    accel: str | None,
    boot_timeout_s: float | None,
    judge: bool,
    disk: Path | None,
    write_log: Path | None,
    pace: Pace,
) -> Iterator[LiveTarget]:
    from labgrid import Environment

    materialized = materialize(spec, workdir, image, overrides={"disk": disk} if disk else None)
    if materialized.disk is not None and disk is None:
        # A wrong partition map should be named by its YAML key now, not
        # surface as a puzzling failure after booting. (A disk handed in, e.g.
        # a crash state, is what it is: the fault may have damaged it.)
        check_against_disk(spec, materialized.disk)
    try:
        env = Environment(config_file=str(materialized.labgrid_config))
        target = env.get_target("main")
    except HarnessError:
        raise
    except Exception as err:  # labgrid reports config problems with many exception types
        raise explain_labgrid_error(spec, err) from None
    qemu = find_driver(target, ABQEMUDriver)
    # "auto" (the option's default) leaves a target's own choice alone: a
    # target that names tcg knows KVM fails it (e.g. OVMF on this host's KVM).
    if qemu is not None and accel and accel != "auto":
        qemu.accel = accel
    if write_log is not None:
        if qemu is None:
            raise HarnessError(
                f"target '{spec.name}' has no QEMU: its disk writes cannot be logged",
                "record write logs on a QEMU target",
            )
        qemu.write_log = str(write_log)
    console = target.get_driver("ConsoleProtocol", activate=False)
    recorder = SerialRecorder(bootloader.markers.banner)
    hooks: list[Callable[[bytes], None]] = []

    def sink(data: bytes) -> None:
        recorder.feed(data)
        for hook in list(hooks):
            hook(data)

    untee = tee_console(console, sink)
    disk = materialized.disk
    watcher = BootWatcher(
        console,
        bootloader.markers,
        ready_pattern(spec),
        health=health_pattern(spec),
        tail=lambda: recorder.tail(15),
        gate=qemu if qemu is not None and qemu.hold_resets else None,
        probe=DiskProbe(bootloader, disk, qemu, spec.slots) if disk is not None else None,
        # Without `judge` the boots are still judged and counted, not enforced.
        judge=ContractJudge(bootloader, dict(spec.slots), enforcing=judge),
        explain=qemu.explain_stall if qemu is not None else None,
        poll_power=qemu is None,
        shell_env=_board_env_reader(spec, bootloader, target) if disk is None else None,
        pace=pace,
    )
    strategy = target.get_driver(ABBootStrategy)
    strategy.configure(watcher)
    strategy.boot_timeout = boot_timeout_s or spec.boot_timeout_s
    try:
        yield LiveTarget(target, spec, disk, recorder, watcher, hooks, pace=pace)
    finally:
        try:
            target.deactivate_all_drivers()
        finally:
            untee()
