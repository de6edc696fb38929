"""The `faults` fixture's object: makes faults, remembers them, and checks them at the end."""

from __future__ import annotations

from harness.errors import HarnessConfigError
from harness.faults.base import (
    Fault,
    FaultClock,
    FaultNotInjected,
    FaultProof,
    write_proof,
)
from harness.faults.ioerrors import WriteErrors
from harness.faults.machine import Machine
from harness.faults.powercut import DEFAULT_POLL_S, DEFAULT_RATE, PowerCutAfter, PowerCutNow
from harness.faults.powercut import percent_of as _percent_of


class Faults:
    """Faults for one test. Each is recorded; `finish()` writes every proof and
    raises `FaultNotInjected` for the first one that did not fire."""

    def __init__(self, machine: Machine, clock: FaultClock) -> None:
        self._machine = machine
        self._clock = clock
        self._faults: list[Fault] = []

    @property
    def injected(self) -> list[Fault]:
        return list(self._faults)

    def discard(self, fault: Fault) -> None:
        """Leave `fault` out of the end-of-test check: for a test that asserts its
        FaultNotInjected itself."""
        self._faults.remove(fault)

    def power_cut_now(self) -> PowerCutNow:
        """Cut power at once (QEMU: SIGKILL); then call `booted.power_on()`."""
        cut = PowerCutNow(self._machine, self._clock)
        self._faults.append(cut)
        cut.arm()
        cut.fire()
        return cut

    def power_cut_after(
        self,
        partition: str | int,
        nbytes: int | None = None,
        *,
        percent: float | None = None,
        of: int | None = None,
        rate: int = DEFAULT_RATE,
        poll_s: float = DEFAULT_POLL_S,
    ) -> PowerCutAfter:
        """Cut power once `nbytes` (or `percent` % of `of` bytes) are written; use with `with`."""
        if (nbytes is None) == (percent is None) or (percent is not None and of is None):
            raise HarnessConfigError(
                "power_cut_after needs either nbytes=N or percent=P with of=TOTAL_BYTES",
                "e.g. power_cut_after('B', percent=50, of=payload.size)",
            )
        target = nbytes if nbytes is not None else _percent_of(int(of or 0), float(percent or 0))
        cut = PowerCutAfter(self._machine, self._clock, partition, target, rate=rate, poll_s=poll_s)
        self._faults.append(cut)
        return cut

    def write_errors(self, partition: str | int) -> WriteErrors:
        """Fail every write to `partition` while the `with` block runs (QEMU blkdebug)."""
        fault = WriteErrors(self._machine, self._clock, partition)
        self._faults.append(fault)
        return fault

    def finish(self) -> list[FaultProof]:
        """Write each fault's proof to the evidence folder; raise for one that did not fire."""
        proofs = [fault.proof() for fault in self._faults]
        if self._clock.evidence_dir is not None:
            for index, proof in enumerate(proofs, start=1):
                write_proof(self._clock.evidence_dir, index, proof)
        for proof in proofs:
            if not proof.fired:
                raise FaultNotInjected(proof.kind, proof.why or "it never fired")
        return proofs
