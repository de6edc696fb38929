"""Booting: power on, follow every boot on the console, hand over a shell.

`BootWatcher` reads the console until the device says it is ready,
recording each boot it passes on the way (an update that fails its health
check reboots by itself; a rollback is several boots in a row).
`ABBootStrategy` is the labgrid strategy that a target YAML names: it
owns the power/console/shell drivers and the off → shell state machine.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import attr
from labgrid.factory import target_factory
from labgrid.strategy.common import Strategy, StrategyError
from pexpect import TIMEOUT

from harness.bootloader import LINE_START, BootMarkers
from harness.errors import DeviceError
from harness.steps import StepLog

log = logging.getLogger(__name__)

HEALTH = re.compile(LINE_START + rb"ab-health: (?P<result>PASS|FAILED)")
PANIC = re.compile(LINE_START + rb"(?:\[[ \d.]+\] )?Kernel panic - not syncing")
FATAL = re.compile(LINE_START + rb"ab-(?:boot|initramfs): FATAL (?P<why>[^\r\n]*)")


@dataclass(frozen=True)
class BootRecord:
    """One boot as seen on the console, from bootloader banner to ready (or not)."""

    index: int
    started_at: float
    bootloader_slot: str | None = None
    bootcount: int | None = None
    upgrade_available: bool | None = None
    health: str | None = None  # "pass" | "fail" | None (not reported)
    panicked: bool = False
    ready: bool = False
    running_slot: str | None = None
    version: str | None = None
    ready_at: float | None = None

    @property
    def seconds_to_ready(self) -> float | None:
        return None if self.ready_at is None else self.ready_at - self.started_at


@dataclass
class BootWatcher:
    """Follows boots on a console until the ready marker appears."""

    console: Any  # labgrid ConsoleProtocol: expect(patterns, timeout) -> (i, before, match, after)
    markers: BootMarkers
    ready: re.Pattern[bytes]
    tail: Callable[[], str] = lambda: ""
    history: list[BootRecord] = field(default_factory=list)

    def wait_ready(self, *, per_boot_s: float, max_boots: int) -> list[BootRecord]:
        """Return the boots seen until the device is ready.

        Raises DeviceError when a boot exceeds per_boot_s, when more than
        max_boots boots happen, or when the bootloader reports a fatal error;
        the message carries the last serial lines.
        """
        patterns: list[re.Pattern[bytes]] = [self.markers.banner, self.ready, HEALTH, PANIC, FATAL]
        if self.markers.decision is not None:
            patterns.append(self.markers.decision)
        seen: list[BootRecord] = []
        current: BootRecord | None = None
        boot_deadline = time.monotonic() + per_boot_s
        while True:
            remaining = boot_deadline - time.monotonic()
            if remaining <= 0:
                raise self._hang(current, per_boot_s)
            try:
                index, _before, match, _after = self.console.expect(patterns, timeout=remaining)
            except TIMEOUT:
                # from None: the report is the hang and its serial tail, not a
                # chained pexpect TIMEOUT dumping the expect buffer first.
                raise self._hang(current, per_boot_s) from None
            pattern = patterns[index]
            if pattern is self.markers.banner:
                if current is not None:
                    seen.append(self._finish(current))
                if len(seen) >= max_boots:
                    raise DeviceError(
                        f"device booted {len(seen) + 1} times without becoming ready "
                        f"(allowed {max_boots}); slots: {[b.bootloader_slot for b in seen]}"
                        + self._tail_text(),
                        "see the per-boot serial logs: the device is in a boot loop",
                    )
                current = self._start_boot()
                boot_deadline = time.monotonic() + per_boot_s
                continue
            if current is None:  # output before any banner: the first boot began earlier
                current = self._start_boot()
            groups = match.groupdict()
            if pattern is self.ready:
                current = replace(
                    current,
                    ready=True,
                    ready_at=time.monotonic(),
                    running_slot=_text(groups.get("slot")),
                    version=_text(groups.get("version")),
                )
                seen.append(self._finish(current))
                return seen
            if pattern is HEALTH:
                current = replace(current, health="pass" if groups["result"] == b"PASS" else "fail")
            elif pattern is PANIC:
                current = replace(current, panicked=True)
            elif pattern is FATAL:
                raise DeviceError(
                    f"boot #{current.index} failed: {_text(groups['why'])}" + self._tail_text(),
                    "the image cannot boot; rebuild it",
                )
            else:
                current = replace(
                    current,
                    bootloader_slot=_text(groups.get("slot")),
                    bootcount=int(groups["bootcount"], 16) if groups.get("bootcount") else None,
                    upgrade_available=groups.get("upgrade_available") == b"1",
                )

    def _start_boot(self) -> BootRecord:
        index = len(self.history) + 1
        log.info("boot #%d started", index)
        record = BootRecord(index=index, started_at=time.monotonic())
        self.history.append(record)
        return record

    def _finish(self, record: BootRecord) -> BootRecord:
        self.history[record.index - 1] = record
        log.info(
            "boot #%d: bootloader chose %s (bootcount=%s), ran %s v%s, health=%s, ready=%s",
            record.index,
            record.bootloader_slot,
            record.bootcount,
            record.running_slot,
            record.version,
            record.health,
            record.ready,
        )
        return record

    def _hang(self, current: BootRecord | None, per_boot_s: float) -> DeviceError:
        where = (
            f"boot #{current.index}"
            if current
            else f"boot #{len(self.history) + 1} (no bootloader banner)"
        )
        if current is not None:
            self._finish(current)
        return DeviceError(
            f"device hung: {where} not ready within {per_boot_s:.0f} s" + self._tail_text(),
            "see the boot's serial log; raise boot_timeout_s only if it is just slow",
        )

    def _tail_text(self) -> str:
        tail = self.tail().strip()
        return f"\nlast serial lines:\n{tail}" if tail else ""


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode(errors="replace")


class Status(enum.Enum):
    unknown = 0
    off = 1
    shell = 2


@target_factory.reg_driver
@attr.s(eq=False)
class ABBootStrategy(Strategy):  # type: ignore[misc]
    """off → shell for an A/B device, following every boot on the way.

    `configure()` gives it the watcher (markers come from the bootloader
    contract, not from labgrid); then `transition("shell")` powers on and
    returns when the device is ready, `reboot()` and `wait_ready()` follow
    the device through reboots it makes itself.
    """

    bindings: ClassVar[dict[str, str]] = {
        "power": "PowerProtocol",
        "console": "ConsoleProtocol",
        "shell": "ShellDriver",
    }
    broken: BaseException | None  # set by labgrid's Strategy
    status: Status = attr.ib(default=Status.unknown)
    boot_timeout: float = attr.ib(default=60.0, converter=float)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.watcher: BootWatcher | None = None
        self.last_boots: list[BootRecord] = []

    def configure(self, watcher: BootWatcher) -> None:
        self.watcher = watcher

    def _watcher(self) -> BootWatcher:
        if self.watcher is None:
            raise StrategyError("ABBootStrategy used before configure(watcher)")
        return self.watcher

    def transition(self, status: Status | str) -> None:
        """Go to `off` or `shell`; an error marks the strategy broken (like labgrid's
        never_retry) but re-raises the original, whose message says what hung."""
        if self.broken is not None:
            raise StrategyError(f"strategy is broken by an earlier error: {self.broken}")
        if not isinstance(status, Status):
            status = Status[status]
        if status == self.status:
            return
        try:
            self._transition(status)
        except Exception as err:
            self.broken = err
            raise

    def _transition(self, status: Status) -> None:
        if status == Status.off:
            self.target.deactivate(self.shell)
            self.target.activate(self.power)
            self.power.off()
        elif status == Status.shell:
            self.transition(Status.off)
            self.target.activate(self.console)
            self.power.on()
            self.last_boots = self._watcher().wait_ready(per_boot_s=self.boot_timeout, max_boots=1)
            self._activate_shell()
        else:
            raise StrategyError(f"no transition to {status}")
        self.status = status

    def _activate_shell(self) -> None:
        """Hand over the shell; labgrid's login/prompt wait ending in pexpect's TIMEOUT
        becomes a DeviceError naming the YAML keys to check, with the serial tail."""
        try:
            self.target.activate(self.shell)
        except TIMEOUT:
            keys = "targets.main.drivers.ShellDriver"
            raise DeviceError(
                f"no shell prompt {self.shell.prompt!r} (or login prompt "
                f"{self.shell.login_prompt!r}) within {self.shell.login_timeout} s "
                f"({keys}.prompt / .login_prompt / .login_timeout)" + self._watcher()._tail_text(),
                f"compare {keys}.prompt and .login_prompt in the target YAML with the serial log",
            ) from None

    def power_cut(self) -> None:
        """Cut power with no warning: QEMU is killed (nothing flushed that the guest
        had not submitted); a board without a cut primitive is switched off."""
        self.target.deactivate(self.shell)
        cut = getattr(self.power, "power_cut", None)
        if cut is not None:
            cut()
        else:
            self.power.off()
        self.status = Status.off

    def reboot(self, max_boots: int = 1) -> list[BootRecord]:
        """Reboot from the shell and follow the device until it is ready again."""
        self.target.deactivate(self.shell)
        self.console.sendline("sync; reboot -f")
        return self.wait_ready(max_boots)

    def wait_ready(self, max_boots: int = 1) -> list[BootRecord]:
        """Follow boots the device makes by itself until it is ready."""
        self.target.deactivate(self.shell)
        try:
            self.last_boots = self._watcher().wait_ready(
                per_boot_s=self.boot_timeout, max_boots=max_boots
            )
        except DeviceError:
            self.status = Status.unknown
            raise
        self._activate_shell()
        self.status = Status.shell
        return self.last_boots


class BootSession:
    """The booted device as scenarios see it: reboot, wait, and the boot history."""

    def __init__(self, strategy: ABBootStrategy, steps: StepLog) -> None:
        self._strategy = strategy
        self._steps = steps

    @property
    def history(self) -> list[BootRecord]:
        return list(self._strategy._watcher().history)

    def reboot(self, max_boots: int = 1) -> list[BootRecord]:
        """Reboot and return every boot until the device is ready again."""
        with self._steps.step("reboot"):
            return self._strategy.reboot(max_boots)

    def wait_ready(self, max_boots: int = 1) -> list[BootRecord]:
        """Follow reboots the device makes by itself until it is ready."""
        with self._steps.step("wait for ready"):
            return self._strategy.wait_ready(max_boots)

    def power_cut(self) -> None:
        """Cut power now (QEMU: SIGKILL), whatever the device is doing."""
        with self._steps.step("power cut"):
            self._strategy.power_cut()

    def power_on(self) -> list[BootRecord]:
        """Power on after a cut and return the boots until the device is ready."""
        with self._steps.step("power on"):
            self._strategy.transition(Status.shell)
            return list(self._strategy.last_boots)
