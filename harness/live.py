"""A target brought to life: labgrid environment, console recording and boot
watcher wired together, and torn down (QEMU stopped) whatever happens.

The pytest plugin and the benchmark both start targets through here, so
what is measured is what the tests run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.boot import ABBootStrategy, BootWatcher
from harness.bootloader import LINE_START, Bootloader
from harness.console import tee_console
from harness.errors import HarnessError
from harness.images import ImageSet
from harness.qemu import ABQEMUDriver
from harness.serial_log import SerialRecorder
from harness.target import TargetSpec, check_against_disk, materialize


@dataclass
class LiveTarget:
    """A labgrid target with its recorders, ready to be powered on."""

    target: Any
    spec: TargetSpec
    disk: Path | None
    recorder: SerialRecorder
    watcher: BootWatcher

    @property
    def strategy(self) -> ABBootStrategy:
        strategy: ABBootStrategy = self.target.get_driver(ABBootStrategy)
        return strategy

    @property
    def qemu(self) -> ABQEMUDriver | None:
        driver: ABQEMUDriver | None = find_driver(self.target, ABQEMUDriver)
        return driver


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
) -> Iterator[LiveTarget]:
    """Create the labgrid target for spec in workdir; on exit, every driver is
    deactivated, which stops QEMU (also on errors and KeyboardInterrupt)."""
    from labgrid import Environment

    materialized = materialize(spec, workdir, image)
    if materialized.disk is not None:
        # A wrong partition map should be named by its YAML key now, not
        # surface as a puzzling failure after booting.
        check_against_disk(spec, materialized.disk)
    try:
        env = Environment(config_file=str(materialized.labgrid_config))
        target = env.get_target("main")
    except HarnessError:
        raise
    except Exception as err:  # labgrid reports config problems with many exception types
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise HarnessError(
            f"target '{spec.name}' ({spec.path}): labgrid rejected it: {first}",
            "fix the drivers/resources in the target YAML",
        ) from None
    qemu = find_driver(target, ABQEMUDriver)
    if qemu is not None and accel:
        qemu.accel = accel
    console = target.get_driver("ConsoleProtocol", activate=False)
    recorder = SerialRecorder(bootloader.markers.banner)
    tee_console(console, recorder.feed)
    watcher = BootWatcher(
        console,
        bootloader.markers,
        re.compile(LINE_START + spec.ready_marker.encode()),
        tail=lambda: recorder.tail(15),
    )
    strategy = target.get_driver(ABBootStrategy)
    strategy.configure(watcher)
    strategy.boot_timeout = boot_timeout_s or spec.boot_timeout_s
    try:
        yield LiveTarget(target, spec, materialized.disk, recorder, watcher)
    finally:
        target.deactivate_all_drivers()
