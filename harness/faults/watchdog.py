"""A hardware watchdog resetting a hung device, observed on a running QEMU target.

The hang itself comes from the device (a payload whose userspace stops, so
its watchdog daemon stops feeding the watchdog); what the harness must prove
is that the *watchdog* got the device back, not a panic, not a reboot the
guest asked for, not the harness. QEMU says so: when its watchdog device
expires it sends a WATCHDOG event (with the action it took) on every QMP
monitor. The fault listens on its own QMP session while the `with` block
runs; no WATCHDOG event means it never fired.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Self

from harness.errors import HarnessConfigError, HarnessError
from harness.faults.base import FaultClock, FaultProof, require_fired
from harness.faults.machine import Machine
from harness.machines.qmp import QmpChannel


class WatchdogReset:
    """Expect the target's watchdog to expire and reset it within the `with` block."""

    kind = "watchdog-reset"

    def __init__(self, machine: Machine, clock: FaultClock, model: str | None) -> None:
        self._machine = machine
        self._clock = clock
        self._model = model
        self._qmp: QmpChannel | None = None
        self._armed_at: float | None = None
        self._proof = FaultProof(self.kind, self._what(), None, why="never armed")

    def _what(self) -> str:
        return f"the {self._model or 'hardware'} watchdog expires and resets the device"

    def arm(self) -> None:
        """Open a QMP session of our own (QEMU sends it every event from now on)."""
        self._machine.require_running(self.kind)
        if self._model is None:
            raise HarnessConfigError(
                "fault 'watchdog-reset' needs a watchdog device, and this target has none",
                "set `watchdog: i6300esb` under ABQEMUDriver in the target YAML",
            )
        qmp = self._machine.qmp()
        try:
            qmp.events()  # older events are not this fault's
        except BaseException:
            qmp.close()
            raise
        self._qmp = qmp
        self._armed_at = self._clock.now()
        self._clock.on_event(f"fault {self.kind} armed: waiting for the {self._model} to expire")

    def fire(self) -> None:
        """Nothing to do: the device's hang fires it; kept for the Fault protocol."""
        if self._qmp is None:
            raise HarnessError("WatchdogReset.fire() before arm()", "use it as a context manager")

    def disarm(self) -> FaultProof:
        """Collect the WATCHDOG events QEMU sent while armed; they are the proof."""
        qmp, self._qmp = self._qmp, None
        if qmp is None:
            return self._proof
        with qmp:
            try:
                events = qmp.events(timeout_s=2.0)
            except HarnessError:
                events = []  # QEMU gone (e.g. a power cut): no proof from it
        fired = [e for e in events if e.get("event") == "WATCHDOG"]
        self._proof = self._make_proof(fired)
        self._clock.on_event(f"fault {self.kind}: {len(fired)} WATCHDOG events")
        return self._proof

    def _make_proof(self, events: list[dict[str, Any]]) -> FaultProof:
        when = [self._event_time(e) for e in events]
        facts = {
            "model": self._model,
            "armed_at_s": self._armed_at,
            "watchdog_events": len(events),
            "actions": [e.get("data", {}).get("action") for e in events],
            "at_s": when,
        }
        if not events:
            return FaultProof(
                self.kind, self._what(), None, facts,
                why="QEMU sent no WATCHDOG event while armed: the watchdog never expired",
            )  # fmt: skip
        return FaultProof(self.kind, self._what(), when[0], facts, fired=True)

    def _event_time(self, event: dict[str, Any]) -> float:
        """The event's time on the test's clock (QEMU stamps events with wall time)."""
        stamp = event.get("timestamp", {})
        wall = float(stamp.get("seconds", 0)) + float(stamp.get("microseconds", 0)) / 1e6
        return round(self._clock.now() - max(0.0, time.time() - wall), 3)

    def proof(self) -> FaultProof:
        return self._proof

    def require_fired(self) -> FaultProof:
        return require_fired(self._proof)

    def __enter__(self) -> Self:
        self.arm()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disarm()
