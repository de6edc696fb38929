"""Live power cuts on a running QEMU target: now, or after N bytes written.

QEMU's own power-off never loses a write the guest already handed to the
disk, and only a SIGKILL is as abrupt as a yanked cable, so a cut here is
a SIGKILL. Placing it at a byte count: polling `query-blockstats` at full
speed overshoots by megabytes, so the disk's throttle filter slows guest
writes to `rate` (in pieces of at most 64 KiB, see harness.machines.blockgraph),
and the last MiB before the target to an eighth of it, while a watcher
thread polls. At arming, the host fills the partition with a marker.
The watcher fires once N bytes of the partition no longer hold their
marker (counted on the host per 4 KiB page), clamps the throttle shut
(nothing more reaches the disk file), lets QEMU's counter settle and kills
QEMU. Writes still queued in the throttle are lost, as in a real power loss.

Why the host count and not the disk's write counter decides: the counter
covers the whole disk (the running slot's ext4 journal writes too), and it
counts a guest request only once all its pieces are written, while the
throttle admits pieces of several requests in turn. Both are in the proof:
`landed_bytes` (host, exact to the sector) and `blockstats_bytes`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from harness.errors import DeviceError, HarnessConfigError, HarnessError
from harness.faults.base import FaultClock, FaultNotInjected, FaultProof, require_fired
from harness.faults.machine import Machine, process_gone
from harness.faults.marker import LiveCount, count_unmarked, fill_marker
from harness.images.diskimage import Partition
from harness.machines.blockgraph import SECTOR, set_write_limit, write_stats

log = logging.getLogger(__name__)

MIB = 1 << 20
# What the throttle admits while the watcher polls, and how often it polls:
# rate x poll is the most that can slip past between two polls (80 KiB).
DEFAULT_RATE = 8 * MIB
DEFAULT_POLL_S = 0.01
# The last stretch before the target is written at rate / _APPROACH_SLOWDOWN,
# so a poll that comes late (a busy host) lets less slip past the target.
_APPROACH_BYTES = MIB
_APPROACH_SLOWDOWN = 8
# After the clamp, the count must be still this long before it is final.
_SETTLE_S = 0.05
_ARM_TIMEOUT_S = 15.0


class PowerCutNow:
    """Cut power immediately (SIGKILL of QEMU). Proof: when, and that the pid is gone."""

    kind = "power-cut-now"

    def __init__(self, machine: Machine, clock: FaultClock) -> None:
        self._machine = machine
        self._clock = clock
        self._pid: int | None = None
        self._proof = FaultProof(self.kind, "power cut now", None, why="never fired")

    def arm(self) -> None:
        self._pid = self._machine.require_running(self.kind)

    def fire(self) -> None:
        if self._pid is None:
            self.arm()
        assert self._pid is not None
        self._machine.qemu.kill_process()
        when = self._clock.now()
        self._machine.power_cut()
        gone = process_gone(self._pid)
        self._clock.on_event(f"fault {self.kind}: QEMU pid {self._pid} killed, gone={gone}")
        self._proof = FaultProof(
            self.kind,
            "power cut now (SIGKILL of QEMU)",
            when,
            {"qemu_pid": self._pid, "signal": "SIGKILL", "pid_gone": gone},
            fired=gone,
            why="" if gone else f"QEMU pid {self._pid} still exists 5 s after SIGKILL",
        )

    def proof(self) -> FaultProof:
        return self._proof

    def require_fired(self) -> FaultProof:
        return require_fired(self._proof)


@dataclass
class _Watch:
    """What the watcher thread saw; written by it, read after join()."""

    armed: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    force: threading.Event = field(default_factory=threading.Event)
    base_bytes: int = 0
    fired_at: float | None = None
    trigger: str = ""  # what made it fire
    trigger_bytes: int | None = None  # counter delta at the poll that fired
    settled_bytes: int | None = None  # counter delta once the clamp held
    last_bytes: int = 0
    polls: int = 0
    error: BaseException | None = None


class PowerCutAfter:
    """Cut power once `nbytes` have been written to the disk since arming; a context manager.

    Use it around the action that writes the partition:

        with faults.power_cut_after(partition="B", nbytes=8 << 20) as cut:
            push.install(payload)
        booted.power_on()

    The block may end with the DeviceError the cut causes (QEMU gone while a
    command ran); that one is swallowed, and only when this cut fired.
    """

    kind = "power-cut-after-bytes"

    def __init__(
        self,
        machine: Machine,
        clock: FaultClock,
        partition: str | int,
        nbytes: int,
        *,
        rate: int = DEFAULT_RATE,
        poll_s: float = DEFAULT_POLL_S,
    ) -> None:
        if nbytes <= 0:
            raise HarnessConfigError(
                f"power_cut_after: nbytes must be positive, got {nbytes}",
                "give a byte count inside the partition",
            )
        self._machine = machine
        self._clock = clock
        self._partition_name = partition
        self.nbytes = nbytes
        self._rate = rate
        self._poll_s = poll_s
        self._part: Partition | None = None
        self._watch = _Watch()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._proof = FaultProof(self.kind, self._what(), None, why="never armed")

    def _what(self) -> str:
        return f"power cut after {self.nbytes} bytes written to partition {self._partition_name}"

    def arm(self) -> None:
        """Mark the partition, throttle the disk, and start watching its write counter."""
        self._pid = self._machine.require_running(self.kind)
        self._machine.require_graph(self.kind)
        part = self._machine.partition_of(self._partition_name)
        if self.nbytes > part.size_bytes:
            raise HarnessConfigError(
                f"power_cut_after: {self.nbytes} bytes do not fit partition "
                f"{self._partition_name} ({part.size_bytes} bytes)",
                "give a byte count inside the partition",
            )
        self._part = part
        assert self._machine.disk is not None
        fill_marker(self._machine.disk, part)
        self._thread = threading.Thread(target=self._run, name="ab-power-cut", daemon=True)
        self._thread.start()
        if not self._watch.armed.wait(_ARM_TIMEOUT_S) or self._watch.error is not None:
            self._watch.stop.set()
            self._thread.join(_ARM_TIMEOUT_S)
            raise DeviceError(
                f"power_cut_after could not arm: {self._watch.error or 'no QMP answer in time'}",
                "check that QEMU still runs (its stderr says why not)",
            )
        self._clock.on_event(f"fault {self.kind} armed: {self._what()}")

    def fire(self) -> None:
        """Cut now, before the byte count is reached (the watcher clamps, settles, kills)."""
        if self._thread is None:
            raise HarnessError(
                "PowerCutAfter.fire() before arm()", "use it as a context manager around the write"
            )
        self._watch.force.set()
        self._thread.join(30.0)

    def _run(self) -> None:
        watch = self._watch
        assert self._part is not None and self._machine.disk is not None
        try:
            with self._machine.qmp() as qmp, LiveCount(self._machine.disk, self._part) as count:
                watch.base_bytes = write_stats(qmp).wr_bytes
                set_write_limit(qmp, self._rate)
                watch.armed.set()
                approaching = False
                while not watch.stop.is_set():
                    delta = write_stats(qmp).wr_bytes - watch.base_bytes
                    watch.last_bytes, watch.polls = delta, watch.polls + 1
                    host = count.written_bytes()
                    if not approaching and host >= self.nbytes - _APPROACH_BYTES:
                        set_write_limit(qmp, max(self._rate // _APPROACH_SLOWDOWN, SECTOR))
                        approaching = True
                    if host >= self.nbytes:
                        watch.trigger = f"{host} bytes of the partition written (host count)"
                    elif watch.force.is_set():
                        watch.trigger = "fire() called"
                    if watch.trigger:
                        watch.trigger_bytes = delta
                        set_write_limit(qmp, 1)  # shut: at most one more piece passes
                        watch.settled_bytes = self._settle(qmp) - watch.base_bytes
                        self._machine.qemu.kill_process()
                        watch.fired_at = self._clock.now()
                        return
                    time.sleep(self._poll_s)
                set_write_limit(qmp, None)
        except BaseException as err:  # reported by arm() or __exit__, never lost
            watch.error = err
            watch.armed.set()

    def _settle(self, qmp: Any) -> int:
        """The write count once it stopped moving (requests admitted before the clamp)."""
        last = write_stats(qmp).wr_bytes
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            time.sleep(_SETTLE_S)
            now = write_stats(qmp).wr_bytes
            if now == last:
                break
            last = now
        return last

    def __enter__(self) -> Self:
        self.arm()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        watch = self._watch
        watch.stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
        fired = watch.fired_at is not None
        if fired:
            self._machine.power_cut()
        self._proof = self._make_proof(fired)
        self._clock.on_event(
            f"fault {self.kind}: "
            + (
                f"cut with {self._proof.facts['landed_bytes']} bytes in the partition "
                f"(target {self.nbytes}; {watch.trigger})"
                if fired
                else f"not injected: {self._proof.why}"
            )
        )
        if fired and isinstance(exc, DeviceError):
            log.info("swallowed the consequence of our own power cut: %s", exc)
            return True
        if not fired and exc is None:
            raise FaultNotInjected(self.kind, self._proof.why)
        return False

    def _make_proof(self, fired: bool) -> FaultProof:
        watch = self._watch
        facts: dict[str, Any] = {
            "target_bytes": self.nbytes,
            "throttle_bytes_per_s": self._rate,
            "approach": f"last {_APPROACH_BYTES} bytes at 1/{_APPROACH_SLOWDOWN} of the rate",
            "poll_s": self._poll_s,
            "polls": watch.polls,
            "attribution": (
                "landed_bytes: partition sectors that no longer hold the marker the host "
                "wrote at arming, counted on the host after the cut; blockstats_bytes: "
                "query-blockstats wr_bytes delta since arming (whole disk, completed "
                "requests only)"
            ),
        }
        if self._pid is not None:
            facts["qemu_pid"] = self._pid
        if self._part is not None:
            facts["partition"] = {
                "name": str(self._partition_name),
                "number": self._part.number,
                "start_bytes": self._part.start_bytes,
                "size_bytes": self._part.size_bytes,
            }
        if not fired:
            why = (
                f"watcher failed: {watch.error}"
                if watch.error is not None
                else f"only {watch.last_bytes} of {self.nbytes} bytes were written "
                "while the block ran"
            )
            facts["bytes_written_by_exit"] = watch.last_bytes
            return FaultProof(self.kind, self._what(), None, facts, fired=False, why=why)
        assert self._pid is not None and self._part is not None
        assert self._machine.disk is not None
        host = count_unmarked(self._machine.disk, self._part)
        facts["trigger"] = watch.trigger
        facts["trigger_blockstats_bytes"] = watch.trigger_bytes
        facts["blockstats_bytes"] = watch.settled_bytes
        facts["landed_bytes"] = host["written_bytes"]
        facts["landed_prefix_bytes"] = host["prefix_bytes"]
        facts["error_bytes"] = host["written_bytes"] - self.nbytes
        facts["pid_gone"] = process_gone(self._pid)
        return FaultProof(self.kind, self._what(), watch.fired_at, facts, fired=True)

    def proof(self) -> FaultProof:
        return self._proof

    def require_fired(self) -> FaultProof:
        return require_fired(self._proof)

    @property
    def landed_bytes(self) -> int:
        """Bytes that reached the disk when power went (raises if the cut did not fire)."""
        value = self.require_fired().facts["landed_bytes"]
        return int(value)


def percent_of(total: int, percent: float) -> int:
    """`percent` % of `total` bytes, rounded down to a whole sector."""
    if not 0 < percent <= 100:
        raise HarnessConfigError(
            f"power_cut_after: percent must be in (0, 100], got {percent}",
            "give e.g. percent=50",
        )
    return max(SECTOR, int(total * percent / 100) // SECTOR * SECTOR)
