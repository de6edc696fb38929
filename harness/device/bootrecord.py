"""A boot as the harness saw it, and what the watcher needs from the machine
and the oracle: the record every scenario, the oracle and the report read
(`BootRecord`), apart from the console reading that fills it in
(harness.device.watcher)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from harness.bootloaders import BootEnv
from harness.judge.judgement import Decision, Judgement


@dataclass(frozen=True)
class EnvSave:
    """One env save the bootloader reported on the console."""

    why: str
    file: str
    flags: int


@dataclass(frozen=True)
class BootRecord:
    """One boot as seen on the console, from bootloader banner to ready (or not).

    `failure` says why a boot did not reach a shell (kernel not loadable,
    kernel panic, failed health check, reset): such a boot is an observed
    boot, counted like any other, not a harness error. `env_before` is the
    env on the disk when the boot began, `env_after` the env on the disk
    right after the bootloader's saves (read at its handoff line, or at the
    image's decision line; for a boot that never reached Linux, at the next
    reset or power-on: `env_after_at` says which); both None where the
    harness cannot read the disk then (e.g. a physical board). `line` is the
    decision an image printed, if it prints one; `judgement` the oracle's
    verdict with the decision it observed.
    """

    index: int
    started_at: float
    line: Decision | None = None
    health: str | None = None  # "pass" | "fail" | None (not reported)
    panicked: bool = False
    ready: bool = False
    running_slot: str | None = None
    version: str | None = None
    ready_at: float | None = None
    failure: str | None = None
    saves: tuple[EnvSave, ...] = ()
    env_before: BootEnv | None = None
    env_after: BootEnv | None = None
    reset_by: str | None = None  # who ended the boot with a reset, when known ("watchdog")
    handoff: bool = False  # the bootloader's handoff line: Linux was started
    env_after_at: str | None = None  # "decision" | "handoff" | "reset" | "power-on"
    judgement: Judgement | None = None

    @property
    def seconds_to_ready(self) -> float | None:
        return None if self.ready_at is None else self.ready_at - self.started_at

    @property
    def reached_shell(self) -> bool:
        return self.ready

    @property
    def reached_linux(self) -> bool:
        """Linux started: the handoff line, or anything Linux printed."""
        return (
            self.handoff
            or self.ready
            or self.panicked
            or self.health is not None
            or self.running_slot is not None
        )

    def _decided(self, name: str) -> object:
        """A field of the decision: as observed by the oracle where it saw it,
        else as the image's decision line printed it, else None."""
        for decision in (self.judgement and self.judgement.decision, self.line):
            value = getattr(decision, name) if decision is not None else None
            if value is not None:
                return value
        return None

    @property
    def bootloader_slot(self) -> str | None:
        """The slot the bootloader started (observed: the slot Linux runs, or
        the one the env after its saves names); unjudged, the slot Linux runs."""
        slot = self._decided("slot")
        if isinstance(slot, str):
            return slot
        return self.running_slot if self.ready else None

    @property
    def bootcount(self) -> int | None:
        """The bootcount the bootloader left (observed where it saved it)."""
        count = self._decided("bootcount")
        return count if isinstance(count, int) and not isinstance(count, bool) else None

    @property
    def upgrade_available(self) -> bool | None:
        """Whether an update was still pending after the bootloader's saves."""
        flag = self._decided("upgrade_available")
        return flag if isinstance(flag, bool) else None


class ResetGate(Protocol):
    """A machine that holds itself in reset between boots (QEMU), so the
    harness can read the disk at the exact moment one boot ends."""

    def held_in_reset(self) -> bool: ...

    def release_reset(self) -> None: ...

    def reset_cause(self) -> str | None:
        """Who caused the reset now held ("watchdog", "guest-reset", ...), if known."""
        ...


class BootProbe(Protocol):
    """Reads the disk at the two moments the contract is judged on."""

    def env_now(self, label: str, *, pause: bool) -> BootEnv | None: ...


class BootJudge(Protocol):
    """Judges boots against the bootloader contract (the oracle)."""

    def judge(self, boot: BootRecord, following: BootRecord | None) -> Judgement:
        """One boot's judgement; `following` is the boot after it, if any began."""
        ...

    def enforce(self, judgements: Sequence[Judgement]) -> None:
        """Raise for the violations among `judgements` (a product failure)."""
        ...
