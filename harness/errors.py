"""Errors that say who is at fault and how to fix it, in one line.

`HarnessConfigError` is the user's input (target YAML, CLI arguments, a
file that is not what it claims); `EnvironmentMissing` is the machine
(a tool not installed); `DeviceError` is the device misbehaving (a guest
that hangs, a checksum that does not match on the device). An expected
rollback is never an error: it is an outcome to assert on.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class: `str(err)` is one line naming the cause and the fix."""

    def __init__(self, cause: str, fix: str | None = None) -> None:
        self.cause = cause
        self.fix = fix
        super().__init__(f"{cause} — fix: {fix}" if fix else cause)


class HarnessConfigError(HarnessError):
    """The input given to the harness is wrong (YAML, argument, file)."""


class EnvironmentMissing(HarnessError):
    """A tool or file the harness needs is not on this machine."""


class DeviceError(HarnessError):
    """The device under test misbehaved (hang, bad checksum, no prompt)."""
