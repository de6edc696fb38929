"""The `faults` fixture's object: makes faults, remembers them, and checks them at the end."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NoReturn

from harness.bootloaders import Bootloader
from harness.clients import ShellAgent, UpdateClient
from harness.device.live import LiveTarget
from harness.errors import HarnessConfigError
from harness.faults.base import (
    Fault,
    FaultClock,
    FaultNotInjected,
    FaultProof,
    write_proof,
)
from harness.faults.console_cut import ConsoleCut, placed
from harness.faults.ioerrors import ENOSPC, WriteErrors
from harness.faults.machine import Machine
from harness.faults.powercut import DEFAULT_POLL_S, DEFAULT_RATE, PowerCutAfter, PowerCutNow
from harness.faults.powercut import percent_of as _percent_of
from harness.faults.watchdog import WatchdogReset

NEEDS_BLOCK_LAYER = "needs QEMU block layer"


def _refuse(why: str) -> NoReturn:
    raise HarnessConfigError(why, "run this fault on a QEMU target")


class Faults:
    """Faults for one test. Each is recorded; `finish()` writes every proof and
    raises `FaultNotInjected` for the first one that did not fire.

    On a board (`machine` None) only power cuts are possible, through the
    board's power driver; a fault that needs QEMU's block layer or QMP calls
    `unavailable` with the reason (the plugin makes that a skip)."""

    def __init__(
        self,
        machine: Machine | None,
        clock: FaultClock,
        *,
        live: LiveTarget | None = None,
        bootloader: Bootloader | None = None,
        client: UpdateClient | None = None,
        unavailable: Callable[[str], NoReturn] = _refuse,
    ) -> None:
        self._client: UpdateClient = client or ShellAgent()
        self._board_machine = machine
        self._unavailable = unavailable
        self._clock = clock
        self._live = live
        self._bootloader = bootloader
        self._faults: list[Fault] = []

    @property
    def _machine(self) -> Machine:
        if self._board_machine is None:
            self._unavailable(
                f"{NEEDS_BLOCK_LAYER}: this fault acts on QEMU's disk or QMP, "
                "and this target is a board reached by its console and power switch"
            )
        return self._board_machine

    @property
    def injected(self) -> list[Fault]:
        return list(self._faults)

    def discard(self, fault: Fault) -> None:
        """Leave `fault` out of the end-of-test check: for a test that asserts its
        FaultNotInjected itself."""
        self._faults.remove(fault)

    def power_cut_now(self) -> PowerCutNow:
        """Cut power at once (QEMU: SIGKILL; a board: its power switch); then
        call `booted.power_on()`."""
        if self._board_machine is None and self._live is not None:
            facts = self._live.cut_power_now()
            self._live.strategy.power_cut()
            board_cut = Done(FaultProof("power-cut-now", "power switched off", self._clock.now(),
                                        facts or {}, facts is not None))  # fmt: skip
            self._faults.append(board_cut)
            self._clock.on_event("power cut (power switch off)")
            return board_cut  # type: ignore[return-value]
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

    def power_cut_on_console(
        self, pattern: str, what: str | None = None
    ) -> AbstractContextManager[ConsoleCut]:
        """Cut power the moment a console line matches `pattern` (QEMU: SIGKILL
        from the console tee); use with `with`, then `booted.power_on()`."""
        if self._live is None:
            raise HarnessConfigError("power_cut_on_console needs the live target", "harness bug")
        cut = ConsoleCut(
            self._live, pattern, what or f"power cut when the console printed /{pattern}/",
            self._clock,
        )  # fmt: skip
        self._faults.append(cut)
        return placed(cut)

    def power_cut_in_first_boot_of(self, slot: str) -> AbstractContextManager[ConsoleCut]:
        """Cut power during the first boot of `slot`, after its init started and
        before its health check ran (the line the update client names)."""
        return self.power_cut_on_console(
            self._client.before_health_pattern(slot),
            f"power cut in the first boot of {slot}, before its health check",
        )

    def corrupt_env_copy(self, which: str = "newest") -> FaultProof:
        """Corrupt env copies on the powered-off device's disk ("newest",
        "oldest", "all"); the proof reads the env back and shows them rejected."""
        disk = self._machine.disk
        if disk is None or self._bootloader is None:
            raise HarnessConfigError("corrupt_env_copy needs the disk on the host", "use QEMU")
        if self._live is not None and self._live.qemu is not None and self._live.qemu.alive:
            raise HarnessConfigError(
                "corrupt_env_copy on a running device: the guest caches the env files",
                "cut the power first (booted.power_cut())",
            )
        facts = self._bootloader.corrupt_env_copy(disk, which)
        fault = Done(FaultProof("corrupt-env", f"corrupted the {which} env copy",
                                self._clock.now(), facts, True))  # fmt: skip
        self._faults.append(fault)
        self._clock.on_event(f"corrupted env copies {facts.get('corrupted')}")
        return fault.proof()

    def disk_full(self, partition: str | int) -> WriteErrors:
        """Writes to `partition` fail with ENOSPC, as when the host's disk is full:
        QEMU pauses the guest (its default for ENOSPC) and the harness must name
        the cause. Use with `with`."""
        fault = WriteErrors(self._machine, self._clock, partition, errno=ENOSPC)
        self._faults.append(fault)
        return fault

    def watchdog_reset(self) -> WatchdogReset:
        """Expect the hardware watchdog to reset the device while the `with`
        block runs (e.g. a payload that hangs userspace); the proof is QEMU's
        WATCHDOG event, so a reset from anything else does not count."""
        fault = WatchdogReset(self._machine, self._clock, self._machine.qemu.watchdog)
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


@dataclass
class Done:
    """A fault that happened at once (nothing to arm): only its proof."""

    _proof: FaultProof
    kind: str = "done"

    def arm(self) -> None:
        return None

    def fire(self) -> None:
        return None

    def proof(self) -> FaultProof:
        return self._proof

    def require_fired(self) -> FaultProof:
        return self._proof
