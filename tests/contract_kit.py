"""Simulated boots for the contract tests: a boot as the oracle receives it
from a device that prints nothing of ours (no decision line, no save lines),
the env read from the disk before it and right after its bootloader."""

from __future__ import annotations

from collections.abc import Mapping

from harness.bootloaders import BootEnv
from harness.device.boot import BootRecord

SLOTS = {"A": 2, "B": 3}
COPIES = ("0x400000", "0x800000")


def redundant(flags: int, vars: Mapping[str, str]) -> BootEnv:
    """A U-Boot redundant env as read after the save that wrote `flags`: the
    saves alternate copies, so flags 4 is in the first copy, 5 in the second."""
    return BootEnv(vars, "test", {"copy": COPIES[flags % 2], "flags": str(flags)})


def no_valid_copy() -> BootEnv:
    """What the harness reads from a torn or corrupt env: no copy is valid."""
    return BootEnv({}, "test", {"copy": "none", "error": "bad CRC in both copies"})


def boot(
    before: BootEnv | None,
    after: BootEnv | None,
    running: str | None = None,
    *,
    index: int = 1,
    healthy: bool = True,
) -> BootRecord:
    """A boot that reached Linux (`running`: the slot Linux says it runs, None
    when it never reached a shell), the env after read at U-Boot's handoff
    (`Starting kernel ...`); None where it could not be read."""
    return BootRecord(
        index,
        float(index),
        health="pass" if healthy else "fail",
        ready=running is not None,
        running_slot=running,
        failure=None if healthy else "health check failed",
        env_before=before,
        env_after=after,
        handoff=True,
        env_after_at="handoff" if after is not None else None,
    )
