"""Write I/O errors on one partition of a running QEMU target (QEMU `blkdebug`).

blkdebug's rules are fixed when its node opens, so the fault opens one at
arming time, with a rule for every 4 KiB block of the partition, and swaps
it into the disk's graph under the format node; on exit it is swapped out
again. Guest writes that touch the partition fail with EIO; reads and the
other partitions are untouched.

Proof: the device's failed write count (`query-blockstats`) and the
BLOCK_IO_ERROR events QEMU sent while the fault was armed.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Self

from harness.errors import HarnessError
from harness.faults.base import FaultClock, FaultNotInjected, FaultProof, require_fired
from harness.faults.machine import Machine
from harness.images.diskimage import Partition
from harness.machines.blockgraph import (
    SECTOR,
    insert_write_errors,
    remove_write_errors,
    write_stats,
)
from harness.machines.qmp import QmpChannel

log = logging.getLogger(__name__)

# Guest block-device writes are whole 4 KiB pages, so one rule per page
# catches every write; a finer grid only makes QEMU check more rules.
_RULE_STRIDE = 4096 // SECTOR
EIO = 5
ENOSPC = 28  # what a full host filesystem gives QEMU


class WriteErrors:
    """Fail every write to `partition` while the `with` block runs."""

    kind = "write-io-errors"

    def __init__(
        self, machine: Machine, clock: FaultClock, partition: str | int, errno: int = EIO
    ) -> None:
        self._errno = errno
        if errno == ENOSPC:
            self.kind = "disk-full"
        self._machine = machine
        self._clock = clock
        self._partition_name = partition
        self._part: Partition | None = None
        self._qmp: QmpChannel | None = None
        self._base_failed = 0
        self._armed_at: float | None = None
        self._proof = FaultProof(self.kind, self._what(), None, why="never armed")

    def _what(self) -> str:
        name = "ENOSPC (a full host disk)" if self._errno == ENOSPC else f"errno {self._errno}"
        return f"{name} on every write to partition {self._partition_name}"

    def arm(self) -> None:
        """Open the blkdebug node for the partition's sectors and swap it into the graph."""
        self._machine.require_running(self.kind)
        self._machine.require_graph(self.kind)
        part = self._machine.partition_of(self._partition_name)
        first = part.start_bytes // SECTOR
        sectors = range(first, first + part.size_bytes // SECTOR, _RULE_STRIDE)
        qmp = self._machine.qmp()
        try:
            self._base_failed = write_stats(qmp).failed_wr_operations
            qmp.events()  # drop older events: only this fault's count
            insert_write_errors(qmp, list(sectors), self._errno)
        except BaseException:
            qmp.close()
            raise
        self._qmp, self._part = qmp, part
        self._armed_at = self._clock.now()
        self._clock.on_event(f"fault {self.kind} armed: {self._what()} ({len(sectors)} rules)")

    def fire(self) -> None:
        """Nothing to do: the guest's writes fire it; kept for the Fault protocol."""
        if self._qmp is None:
            raise HarnessError("WriteErrors.fire() before arm()", "use it as a context manager")

    def disarm(self) -> FaultProof:
        """Swap the blkdebug node out again and record what it did."""
        qmp, self._qmp = self._qmp, None
        if qmp is None:
            return self._proof
        with qmp:
            failed = write_stats(qmp).failed_wr_operations - self._base_failed
            events = [e for e in qmp.events() if e.get("event") == "BLOCK_IO_ERROR"]
            remove_write_errors(qmp)
        self._proof = self._make_proof(failed, events)
        self._clock.on_event(
            f"fault {self.kind}: {failed} failed writes, {len(events)} BLOCK_IO_ERROR events"
        )
        return self._proof

    def _make_proof(self, failed: int, events: list[dict[str, Any]]) -> FaultProof:
        assert self._part is not None
        facts: dict[str, Any] = {
            "partition": {
                "name": str(self._partition_name),
                "number": self._part.number,
                "start_bytes": self._part.start_bytes,
                "size_bytes": self._part.size_bytes,
            },
            "errno": self._errno,
            "rule_stride_sectors": _RULE_STRIDE,
            "failed_wr_operations": failed,
            "block_io_error_events": len(events),
            "first_events": [e.get("data", {}) for e in events[:3]],
        }
        # ENOSPC makes QEMU pause the guest and keep the request for a retry
        # (werror=enospc), so it never counts as failed: the events prove it.
        fired = (failed > 0 or self._errno == ENOSPC) and len(events) > 0
        why = (
            ""
            if fired
            else f"{failed} failed writes and {len(events)} BLOCK_IO_ERROR events while armed"
        )
        return FaultProof(self.kind, self._what(), self._armed_at, facts, fired=fired, why=why)

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
        try:
            proof = self.disarm()
        except HarnessError as err:
            if exc is not None:  # QEMU died with the body's error: report that one
                log.warning("could not disarm %s: %s", self.kind, err)
                return
            raise
        if exc is None and not proof.fired:
            raise FaultNotInjected(self.kind, proof.why)
