"""The faults a scenario places, as one object the `faults` fixture hands out.

Each method places one fault on the live target, records its proof in the
test's evidence, and fails the test when the fault never happened; none of
them asks which bootloader or update client the target has.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

import pytest

from harness.agent import ShellAgent
from harness.bootloader import Bootloader
from harness.errors import HarnessConfigError
from harness.faults.base import FaultProof
from harness.faults.console_cut import ConsoleCut, power_cut_on_console
from harness.live import LiveTarget
from harness.report import Evidence


class Faults:
    """The faults a scenario places, as context managers; each records its proof
    in the test's evidence and fails the test if it never fired."""

    def __init__(self, live: LiveTarget, evidence: Evidence, bootloader: Bootloader) -> None:
        self._live = live
        self._evidence = evidence
        self._bootloader = bootloader

    def power_cut_on_console(
        self, pattern: str, what: str | None = None
    ) -> AbstractContextManager[ConsoleCut]:
        """Cut power the moment a console line matches `pattern` (QEMU: SIGKILL);
        afterwards the device is off: `booted.power_on()` goes on."""
        if self._live.qemu is None:
            pytest.skip("a console-triggered cut needs a power switch the harness drives (QEMU)")
        return power_cut_on_console(
            self._live, pattern, self._evidence, what=what, started=self._evidence.started
        )

    def power_cut_in_first_boot_of(self, slot: str) -> AbstractContextManager[ConsoleCut]:
        """Cut power during the first boot of `slot`, after its init started and
        before its health check ran (the reference image's init line)."""
        return self.power_cut_on_console(
            ShellAgent().before_health_pattern(slot),
            f"power cut in the first boot of {slot}, before its health check",
        )

    def corrupt_env_copy(self, which: str = "newest") -> FaultProof:
        """Corrupt env copies on the powered-off device's disk ("newest",
        "oldest", "all"); the proof reads the env back and shows them rejected."""
        if self._live.disk is None:
            pytest.skip("corrupting the env needs the device's disk on the host (QEMU)")
        if self._live.qemu is not None and self._live.qemu.alive:
            raise HarnessConfigError(
                "corrupt_env_copy on a running device: the guest caches the env files",
                "cut the power first (booted.power_cut())",
            )
        facts = self._bootloader.corrupt_env_copy(self._live.disk, which)
        proof = FaultProof(
            "corrupt-env", f"corrupted the {which} env copy", True,
            round(time.monotonic() - self._evidence.started, 3), facts,
        )  # fmt: skip
        self._evidence.record_fault(proof)
        return proof
