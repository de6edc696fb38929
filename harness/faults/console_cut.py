"""Power cut the moment a console line appears.

The trigger watches every chunk the console delivers (a hook on the live
target's console tee, before any expect() sees it) and cuts the power as
soon as a line matches (`LiveTarget.cut_power_now`: QEMU is SIGKILLed; a
board's power driver switches its outlet off): the delay between the chunk
arriving and the cut is the proof's measure of how precisely it was placed. "During the
first boot of the new slot, before its health check ran" is such a cut on
the line the slot's init prints before the health check, with the proof
also showing what, if anything, the console printed after the cut.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.device.live import LiveTarget
from harness.errors import DeviceError, HarnessConfigError
from harness.faults.base import FaultClock, FaultProof, require_fired

log = logging.getLogger(__name__)

_WINDOW = 4096  # bytes of console kept for matching a line split across chunks
KIND = "power-cut-console"


@dataclass
class ConsoleCut:
    """One cut armed on a console pattern; a `Fault` (see harness.faults.base)."""

    live: LiveTarget
    pattern: str
    what: str
    clock: FaultClock
    kind: str = KIND
    _regex: re.Pattern[bytes] = field(init=False, repr=False)
    _buffer: bytearray = field(default_factory=bytearray, repr=False)
    _after: bytearray = field(default_factory=bytearray, repr=False)
    _delay_s: float | None = None
    _when: float | None = None
    _line: str | None = None
    _line_complete: bool = False
    _cut: dict[str, object] | None = None

    def __post_init__(self) -> None:
        try:
            self._regex = re.compile(self.pattern.encode())
        except re.error as err:
            raise HarnessConfigError(
                f"power cut pattern {self.pattern!r} is not a valid regex: {err}",
                "fix the pattern",
            ) from None

    @property
    def fired(self) -> bool:
        return self._cut is not None

    def arm(self) -> None:
        self.live.console_hooks.append(self._feed)

    def fire(self) -> None:
        """Fired by the console itself; this only disarms the trigger."""
        if self._feed in self.live.console_hooks:
            self.live.console_hooks.remove(self._feed)

    def proof(self) -> FaultProof:
        if not self.fired:
            return FaultProof(
                self.kind, self.what, None, {}, False, f"no console line matched /{self.pattern}/"
            )
        facts = {
            # The whole line: its end may have come in after the cut fired (the
            # guest printed it before the power went; the console delivered it later).
            "line": self._whole_line(),
            "seen_at_cut": self._line,
            "delay_ms": round((self._delay_s or 0.0) * 1000, 3),
            **(self._cut or {}),
            "console_after_cut": self._after.decode(errors="replace")[-500:],
        }
        return FaultProof(self.kind, self.what, self._when, facts, True)

    def require_fired(self) -> FaultProof:
        return require_fired(self.proof())

    def _whole_line(self) -> str:
        if self._line is None or self._line_complete:
            return self._line or ""
        rest = self._after.split(b"\n", 1)[0]
        return (self._line + rest.decode(errors="replace")).strip()

    def _feed(self, data: bytes) -> None:
        if self.fired:
            self._after += data  # what the console still delivered after the kill
            return
        arrived = time.monotonic()
        self._buffer += data
        match = self._regex.search(self._buffer)
        if match is None:
            del self._buffer[:-_WINDOW]
            return
        cut = self.live.cut_power_now()
        if cut is None:
            return
        self._cut = cut
        self._delay_s = time.monotonic() - arrived
        self._when = self.clock.now()
        end = self._buffer.find(b"\n", match.start())
        self._line_complete = end >= 0
        line = self._buffer[match.start() : end if end >= 0 else len(self._buffer)]
        self._line = line.decode(errors="replace").rstrip("\r\n")
        # What follows the part of the line taken above (so the line's end,
        # when it comes, is appended once, not after a copy of its start).
        self._after += self._buffer[end if end >= 0 else len(self._buffer) :]
        self.clock.on_event(f"power cut on the console line {self._line!r}")


@contextmanager
def placed(cut: ConsoleCut) -> Iterator[ConsoleCut]:
    """Arm `cut` for the with-block; the console read that the kill interrupts
    raises DeviceError, the expected consequence of this cut, swallowed only
    then. The strategy is left powered off (`booted.power_on()` goes on).
    Raises FaultNotInjected at the end of the block if the line never came."""
    cut.arm()
    try:
        yield cut
    except DeviceError:
        if not cut.fired:
            raise
    finally:
        cut.fire()
        if cut.fired:
            cut.live.strategy.power_cut()  # reap QEMU, mark the strategy off
    cut.require_fired()
    log.info("power cut on %r after %.3f ms", cut._line, (cut._delay_s or 0) * 1000)
