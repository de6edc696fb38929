"""Power cut the moment a console line appears.

The trigger watches every chunk the console delivers (a hook on the live
target's console tee, before any expect() sees it) and SIGKILLs QEMU as
soon as a line matches: the delay between the chunk arriving and the kill
is the proof's measure of how precisely the cut was placed. "During the
first boot of the new slot, before its health check ran" is such a cut on
the line the slot's init prints before the health check, with the proof
also showing that no health-check line came out before power went.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from harness.errors import DeviceError, HarnessConfigError
from harness.faults.base import FaultNotInjected, FaultProof, ProofSink
from harness.live import LiveTarget

log = logging.getLogger(__name__)

_WINDOW = 4096  # bytes of console kept for matching a line split across chunks


@dataclass
class ConsoleCut:
    """One armed cut; after the with-block, `proof` says what happened."""

    pattern: re.Pattern[bytes]
    started: float
    proof: FaultProof | None = None
    _buffer: bytearray = field(default_factory=bytearray)
    _matched_at: float | None = None
    _line: str | None = None
    _pid: int | None = None
    _after: bytearray = field(default_factory=bytearray)

    @property
    def fired(self) -> bool:
        return self._pid is not None

    def feed(self, live: LiveTarget, data: bytes) -> None:
        if self.fired:
            self._after += data  # what came out after the kill (QEMU's last buffered bytes)
            return
        arrived = time.monotonic()
        self._buffer += data
        match = self.pattern.search(self._buffer)
        if match is None:
            del self._buffer[:-_WINDOW]
            return
        qemu = live.qemu
        pid = qemu.kill_now() if qemu is not None else None
        if pid is None:
            return
        self._pid = pid
        self._matched_at = time.monotonic() - arrived
        end = self._buffer.find(b"\n", match.start())
        line = self._buffer[match.start() : end if end >= 0 else len(self._buffer)]
        self._line = line.decode(errors="replace").strip()
        self._after += self._buffer[match.end() :]


@contextmanager
def power_cut_on_console(
    live: LiveTarget,
    pattern: str,
    sink: ProofSink,
    *,
    what: str | None = None,
    started: float | None = None,
) -> Iterator[ConsoleCut]:
    """Arm a cut on `pattern` (a regex over console lines) for the with-block.

    The block runs what should lead to the line (a reboot, an install); the
    console read that the kill interrupts raises DeviceError, which is the
    expected consequence of this cut and is swallowed (only then). On exit
    the strategy is left powered off: `booted.power_on()` goes on. Raises
    FaultNotInjected if the line never came.
    """
    try:
        regex = re.compile(pattern.encode())
    except re.error as err:
        raise HarnessConfigError(
            f"power cut pattern {pattern!r} is not a valid regex: {err}", "fix the pattern"
        ) from None
    cut = ConsoleCut(regex, started if started is not None else time.monotonic())

    def hook(data: bytes) -> None:
        cut.feed(live, data)

    live.console_hooks.append(hook)
    try:
        yield cut
    except DeviceError:
        if not cut.fired:
            raise
    finally:
        live.console_hooks.remove(hook)
        if cut.fired:
            live.strategy.power_cut()  # reap QEMU, mark the strategy off
    description = what or f"power cut when the console printed /{pattern}/"
    if not cut.fired:
        cut.proof = FaultProof("power-cut-console", description, False)
        sink.record_fault(cut.proof)
        raise FaultNotInjected("power-cut-console", f"no console line matched /{pattern}/")
    cut.proof = FaultProof(
        "power-cut-console",
        description,
        True,
        round(time.monotonic() - cut.started, 3),
        {
            "line": cut._line,
            "delay_ms": round((cut._matched_at or 0.0) * 1000, 3),
            "qemu_pid_killed": cut._pid,
            "console_after_cut": cut._after.decode(errors="replace")[-500:],
        },
    )
    sink.record_fault(cut.proof)
    log.info("power cut on %r after %.3f ms", cut._line, (cut._matched_at or 0) * 1000)
