"""A small command vocabulary over a device shell: exec returns, exec0 raises."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from typing import Any, Protocol

from pexpect import TIMEOUT

from harness.device.pace import Pace
from harness.errors import DeviceError

log = logging.getLogger(__name__)


class ShellLike(Protocol):
    """What observers and pushers need from a device shell."""

    def exec(self, cmd: str, timeout_s: float = 30.0) -> tuple[int, str]: ...

    def exec0(self, cmd: str, timeout_s: float = 30.0) -> str: ...


class Shell:
    """Commands on the device through labgrid's ShellDriver (any CommandProtocol).

    `explain` says why the machine stalled when it knows (QEMU paused on a
    full host disk): a command that times out then names that cause. With a
    `pace`, every timeout is a floor scaled by the host's run queue when the
    command starts (harness.device.pace): a busy host is not a hung device.
    """

    def __init__(
        self,
        command: Any,
        explain: Callable[[], str | None] | None = None,
        pace: Pace | None = None,
    ) -> None:
        self._command = command
        self._explain = explain
        self._pace = pace or Pace.fixed()

    def exec(self, cmd: str, timeout_s: float = 30.0) -> tuple[int, str]:
        """Run cmd; return (exit code, stdout+stderr joined by newlines)."""
        allowed = self._pace.step(timeout_s)
        try:
            out, _err, code = self._command.run(f"{cmd} 2>&1", timeout=allowed.seconds)
        except TIMEOUT:
            cause = self._explain() if self._explain is not None else None
            raise DeviceError(
                f"device command did not finish within {allowed.describe()}: {cmd}"
                + (f": {cause}" if cause else ""),
                None if cause else "see the serial log: the device hangs or the command is slow",
            ) from None
        text = "\n".join(line.rstrip("\r") for line in out)
        log.debug("$ %s -> %d", cmd, code)
        return int(code), text

    def exec0(self, cmd: str, timeout_s: float = 30.0) -> str:
        """Run cmd; return its output, or raise DeviceError with the exit code and output."""
        code, text = self.exec(cmd, timeout_s)
        if code != 0:
            last = text.strip().splitlines()[-1] if text.strip() else "no output"
            raise DeviceError(
                f"device command failed (exit {code}): {cmd}: {last}",
                "see the serial log of this boot for the device's side",
            )
        return text

    def env(self, var: str, value: str | None = None) -> str:
        """Read a device environment/shell variable, or set it when value is given."""
        if value is None:
            return self.exec0(f'printf %s "${{{var}}}"')
        self.exec0(f"export {var}={shlex.quote(value)}")
        return value
