"""The oracle on the real U-Boot with the image's decision line ignored: the
watcher is given the markers a stock U-Boot offers (its banner and its own
`Starting kernel ...`, none of our `ab-boot:` lines), so every boot is judged
from the disk and the slot Linux runs alone.

The reference boot script still prints its lines; the first test proves they
were there and went unused, so the judgements cannot have come from them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_oracle_catches_broken_bootloaders import install_broken_script

from harness.judge.oracle import ContractViolation
from harness.judge.verdict import outcome

pytestmark = pytest.mark.qemu


@pytest.fixture
def stock_view(ab_live):
    """Before power-on: the watcher follows the console as on a stock U-Boot."""
    markers = ab_live.watcher.markers
    assert markers.handoff is not None, "the target's bootloader names no handoff line"
    ab_live.watcher.markers = replace(markers, decision=None, save=None, no_kernel=None)
    return ab_live


def test_a_rollback_is_judged_boot_by_boot_without_the_decision_line(
    stock_view, booted, push, shell, observe, payloads
):
    shell.exec0("fw_setenv bootlimit 1")
    assert push.install(payloads["v2-bad"]).ok

    boots = booted.reboot(max_boots=2)
    result = outcome("A", boots, observe.env_host("after rollback"))

    history = stock_view.watcher.history
    console = stock_view.recorder.raw(0, stock_view.recorder.size)
    assert b"ab-boot: slot=" in console, "the reference line was not printed"
    assert [(b.line, b.env_after_at) for b in history] == [(None, "handoff")] * 3
    assert [b.judgement.verdict for b in history] == ["ok"] * 3, [b.judgement for b in history]
    assert [(b.bootloader_slot, b.bootcount, b.upgrade_available, b.health) for b in boots] == [
        ("B", 1, True, "fail"),
        ("A", 2, False, "pass"),
    ]
    assert result.rolled_back, result.describe()


@pytest.mark.nightly
def test_an_altbootcmd_that_does_not_switch_is_caught_without_the_decision_line(
    ab_live, stock_view, shell, payloads, tmp_path, request
):
    install_broken_script(
        ab_live,
        tmp_path,
        "boot",
        '  if test "${mender_boot_part}" = 2; then setenv mender_boot_part 3; '
        "setenv mender_boot_part_hex 3;\n"
        "  else setenv mender_boot_part 2; setenv mender_boot_part_hex 2; fi\n",
        "",
    )
    ab_live.strategy.transition("shell")
    push = request.getfixturevalue("push")
    shell.exec0("fw_setenv bootlimit 1")
    assert push.install(payloads["v2-bad"]).ok

    with pytest.raises(ContractViolation) as caught:
        ab_live.strategy.reboot(max_boots=2)

    text = str(caught.value)
    assert text.startswith("boot #3 broke the bootloader contract"), text
    assert "mender_boot_part=3, expected 2" in text
    assert "expected slot A" in text


def test_a_boot_cut_inside_the_bootloader_is_judged_on_what_it_wrote(
    stock_view, booted, push, shell, faults, payloads
):
    shell.exec0("fw_setenv bootlimit 1")
    assert push.install(payloads["v2"]).ok

    # Right after the trial boot's bootcount save, before U-Boot hands over to Linux.
    with faults.power_cut_on_console(r"ab-boot: saveenv \(bootcount\)"):
        booted.reboot()
    index = booted.history[-1].index
    after = booted.power_on(max_boots=1)

    cut = booted.history[index - 1]
    assert (cut.handoff, cut.failure, cut.env_after_at) == (False, "power cut", "power-on")
    assert cut.judgement is not None and cut.judgement.verdict == "ok", cut.judgement
    assert cut.judgement.reason.startswith("cut short")
    assert cut.judgement.decision is not None and cut.judgement.decision.saves == 1
    # Its count was saved: the next boot finds it past the limit and rolls back.
    assert [(b.bootloader_slot, b.bootcount) for b in after] == [("A", 2)]
    assert all(b.judgement is not None and b.judgement.verdict == "ok" for b in booted.history)
