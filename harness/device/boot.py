"""Booting: power on, follow every boot on the console, hand over a shell.

`ABBootStrategy` is the labgrid strategy that a target YAML names: it owns
the power/console/shell drivers and the off → shell state machine; the
boots themselves are followed by `harness.device.watcher.BootWatcher`.
`BootSession` is the booted device as scenarios see it.
"""

from __future__ import annotations

import enum
import logging
from typing import ClassVar

import attr
from labgrid.factory import target_factory
from labgrid.strategy.common import Strategy, StrategyError
from pexpect import TIMEOUT

from harness.device.bootrecord import BootRecord, EnvSave
from harness.device.steps import StepLog
from harness.device.watcher import BootWatcher
from harness.errors import DeviceError

__all__ = ["ABBootStrategy", "BootRecord", "BootSession", "BootWatcher", "EnvSave", "Status"]

log = logging.getLogger(__name__)


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
            self._watcher().power_on_env()
            self.power.on()
            self.last_boots = self._watcher().wait_ready(per_boot_s=self.boot_timeout, max_boots=1)
            self._activate_shell()
        else:
            raise StrategyError(f"no transition to {status}")
        self.status = status

    def power_on(self, max_boots: int = 1) -> list[BootRecord]:
        """Power on and follow up to `max_boots` boots until one reaches a shell
        (a device starting from a crash state may need several)."""
        if self.broken is not None:
            raise StrategyError(f"strategy is broken by an earlier error: {self.broken}")
        self.transition(Status.off)
        self.target.activate(self.console)
        self._watcher().power_on_env()
        self.power.on()
        self.status = Status.unknown
        return self.wait_ready(max_boots)

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
        self._watcher().before_reboot()
        self.target.deactivate(self.shell)
        self.console.sendline("sync; reboot -f")
        return self.wait_ready(max_boots)

    def reboot_and_watch(self, count: int) -> list[BootRecord]:
        """Reboot from the shell and follow the next `count` boots, ready or not."""
        self._watcher().before_reboot()
        self.target.deactivate(self.shell)
        self.console.sendline("sync; reboot -f")
        return self.watch_boots(count)

    def watch_boots(self, count: int) -> list[BootRecord]:
        """Follow the next `count` boots, ready or not; the device keeps going."""
        self.target.deactivate(self.shell)
        self.status = Status.unknown
        return self._watcher().watch_boots(count, per_boot_s=self.boot_timeout)

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

    def watch_boots(self, count: int) -> list[BootRecord]:
        """Follow the next `count` boots the device makes by itself, whether or
        not they reach a shell (e.g. a boot loop with bootlimit=0)."""
        with self._steps.step(f"watch {count} boots"):
            return self._strategy.watch_boots(count)

    def reboot_and_watch(self, count: int) -> list[BootRecord]:
        """Reboot, then follow the next `count` boots whether or not they reach
        a shell; the device is left booting (power_cut/power_on to go on)."""
        with self._steps.step(f"reboot, watch {count} boots"):
            return self._strategy.reboot_and_watch(count)

    def power_cut(self) -> None:
        """Cut power now (QEMU: SIGKILL), whatever the device is doing."""
        with self._steps.step("power cut"):
            self._strategy.power_cut()

    def power_on(self, max_boots: int = 1) -> list[BootRecord]:
        """Power on after a cut and return the boots until the device is ready
        (up to `max_boots`: a device coming back from a fault may need several)."""
        with self._steps.step("power on"):
            return self._strategy.power_on(max_boots)
