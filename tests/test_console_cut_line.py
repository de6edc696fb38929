"""The console cut's proof names the line it fired on, whole and once, however
the console split it into chunks (no QEMU: the trigger is fed chunks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.faults.base import FaultClock
from harness.faults.console_cut import ConsoleCut


@dataclass
class KillableQemu:
    killed: int = 0

    def kill_now(self) -> int:
        self.killed += 1
        return 4242


@dataclass
class ConsoleOnly:
    qemu: KillableQemu = field(default_factory=KillableQemu)
    console_hooks: list[Callable[[bytes], None]] = field(default_factory=list)

    def cut_power_now(self) -> dict[str, object]:
        """What LiveTarget.cut_power_now does for a QEMU target."""
        return {"qemu_pid_killed": self.qemu.kill_now()}


def feed(chunks: list[bytes]) -> ConsoleCut:
    live = ConsoleOnly()
    cut = ConsoleCut(live, r"ab-boot: slot=A part=2", "test", FaultClock(0.0))  # type: ignore[arg-type]
    cut.arm()
    for chunk in chunks:
        for hook in list(live.console_hooks):
            hook(chunk)
    assert live.qemu.killed == 1
    return cut


def test_a_line_cut_mid_way_is_completed_once_by_what_came_after() -> None:
    cut = feed(
        [b"U-Boot\r\nab-boot: slot=A part=2 boo", b"tcount=1 upgrade_available=0\r\nnext\r\n"]
    )
    facts = cut.proof().facts
    assert facts["seen_at_cut"] == "ab-boot: slot=A part=2 boo"
    assert facts["line"] == "ab-boot: slot=A part=2 bootcount=1 upgrade_available=0"


def test_a_line_whose_end_never_came_is_what_was_seen() -> None:
    cut = feed([b"ab-boot: slot=A part=2 boo"])
    assert cut.proof().facts["line"] == "ab-boot: slot=A part=2 boo"


def test_a_whole_line_in_one_chunk_keeps_what_followed_as_after_the_cut() -> None:
    cut = feed([b"ab-boot: slot=A part=2 bootcount=1\r\nStarting kernel\r\n"])
    facts = cut.proof().facts
    assert facts["line"] == "ab-boot: slot=A part=2 bootcount=1"
    assert "Starting kernel" in facts["console_after_cut"]
