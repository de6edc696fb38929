"""A console-triggered power cut proves itself: it fires on the line, or the
test fails with "fault not injected"; a bad pattern is one clear line."""

import pytest

from harness.errors import HarnessConfigError
from harness.faults.base import FaultNotInjected

pytestmark = pytest.mark.qemu


def test_a_cut_whose_line_never_comes_fails_and_says_so(booted, faults):
    armed = faults.power_cut_on_console(r"this line is never printed")
    with (
        pytest.raises(FaultNotInjected, match=r"^fault not injected: power-cut-console: no"),
        armed as cut,
    ):
        booted.reboot()
    faults.discard(cut)  # this test asserts the failure itself

    assert cut.proof().fired is False
    # The device was never cut: it is still at its shell.
    assert booted.history[-1].ready


def test_a_cut_proves_where_it_landed(booted, faults, ab_live):
    with faults.power_cut_on_console(r"ab-boot: slot=A part=2") as cut:
        booted.reboot()

    proof = cut.proof()
    assert proof.fired
    # The kill may land before the rest of the line left QEMU: only what
    # matched is certain, and the proof never repeats a part of the line.
    assert proof.facts["line"].startswith("ab-boot: slot=A part=2")
    assert proof.facts["line"].count("part=2") == 1
    assert proof.facts["delay_ms"] < 50
    assert ab_live.qemu.status == 0  # powered off until power_on
    assert [b.running_slot for b in booted.power_on()] == ["A"]


def test_a_bad_pattern_is_one_line(faults):
    with (
        pytest.raises(HarnessConfigError, match=r"is not a valid regex: .* — fix: fix the pattern"),
        faults.power_cut_on_console(r"ab-boot: (unclosed"),
    ):
        pass
