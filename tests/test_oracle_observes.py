"""The oracle judging a stock U-Boot, which prints none of our lines: each boot
is judged from the env on the disk before it, the env right after U-Boot's
saves (read at its own `Starting kernel ...`) and the slot Linux runs.

The envs are built as U-Boot's redundant env saves them: each save writes the
other copy with the flags byte + 1. Three stock configurations a board
integration gets wrong are caught from those observations alone.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from harness.bootloaders import BootEnv, UBootFileEnv
from harness.device.boot import BootRecord
from harness.judge.judgement import Decision, Judgement, tally
from harness.judge.oracle import ContractJudge, ContractViolation, judge_boot
from harness.judge.verdict import outcome
from harness.report.summary import oracle_properties, oracle_summary
from harness.targets.target import EnvLocation
from tests.contract_kit import boot as stock_boot

SLOTS = {"A": 2, "B": 3}
COPIES = ("uboot.env", "uboot-redund.env")
UBOOT = UBootFileEnv(EnvLocation(1, COPIES, 0x4000))
SETTLED = {
    "mender_boot_part": "2",
    "mender_boot_part_hex": "2",
    "upgrade_available": "0",
    "bootcount": "0",
    "bootlimit": "1",
    "mender_saveenv_canary": "1",
    "bootcmd": "run mender_setup; run mender_try_to_recover",
}
# After an install from A: B pending, as Linux's fw_setenv left it in copy 1, flags 4.
PENDING = {"mender_boot_part": "3", "mender_boot_part_hex": "3", "upgrade_available": "1"}


def env(saves: int = 0, **changes: str) -> BootEnv:
    """The env read from the disk `saves` saves after the install (copy 1, flags 4)."""
    flags = 4 + saves
    return BootEnv({**SETTLED, **changes}, "host", {"copy": COPIES[saves % 2], "flags": str(flags)})


def judged(boot: BootRecord) -> Judgement:
    return judge_boot(boot, SLOTS, UBOOT)


def test_a_stock_trial_boot_is_judged_with_no_line_from_the_image() -> None:
    before = env(**PENDING)
    after = env(1, bootcount="1", **PENDING)

    judgement = judged(stock_boot(before, after, running="B"))

    assert (judgement.verdict, judgement.violation) == ("ok", None), judgement
    assert judgement.decision == Decision("B", 1, True, 1)


def test_nothing_pending_keeps_the_count_in_ram_and_writes_nothing() -> None:
    before = env()

    judgement = judged(stock_boot(before, before, running="A"))

    assert judgement.verdict == "ok"
    assert judgement.decision == Decision("A", None, False, 0)  # no save: no count seen


def test_a_stock_rollback_is_judged_boot_by_boot_and_the_outcome_reads_it() -> None:
    start = env(**PENDING)
    tried = env(1, bootcount="1", **PENDING)  # bootcount_store
    # bootcount_store (flags 6), then mender_altbootcmd's saveenv (flags 7).
    rolled = env(3, bootcount="2")
    boots = [
        stock_boot(start, tried, healthy=False, index=1),
        stock_boot(tried, rolled, running="A", index=2),
    ]

    judgements = ContractJudge(UBOOT, SLOTS)(boots)

    assert [j.verdict for j in judgements] == ["ok", "ok"], judgements
    observed = [replace(b, judgement=j) for b, j in zip(boots, judgements, strict=True)]
    result = outcome("A", observed, rolled)
    assert result.rolled_back, result.describe()
    assert result.bootloader_slots == ["B", "A"]
    assert result.bootcounts == [1, 2]
    assert result.describe() == (
        "start A → #1:B(bc=1,health=fail), #2:A(bc=2,health=pass) → running A; "
        "env upgrade_available=0 bootcount=2"
    )


# --- three stock configurations a board integration gets wrong --------------


def test_bootcount_not_saved_is_caught() -> None:
    # CONFIG_BOOTCOUNT_ENV missing (or a bootcount driver that stores nowhere):
    # the pending boot leaves the disk as it found it.
    before = env(**PENDING)

    judgement = judged(stock_boot(before, before, running="B"))

    assert judgement.verdict == "violation"
    text = str(judgement.violation)
    assert "0 env saves (uboot.env flags 0x4 → uboot.env flags 0x4), expected 1" in text, text
    assert "bootcount=0, expected 1" in text


def test_bootlimit_ignored_is_caught() -> None:
    # CONFIG_BOOTCOUNT_LIMIT off: the count goes past the limit, the new slot boots again.
    before = env(1, bootcount="1", **PENDING)
    after = env(2, bootcount="2", **PENDING)

    judgement = judged(stock_boot(before, after, running="B", index=3))

    assert judgement.verdict == "violation"
    text = str(judgement.violation)
    assert text.startswith("boot #3 broke the bootloader contract")
    assert "slot B started (Linux runs it), expected slot A" in text
    assert "1 env saves" in text and "expected 2" in text
    assert "upgrade_available=1, expected 0" in text


def test_an_altbootcmd_that_does_not_switch_the_slot_is_caught() -> None:
    # altbootcmd clears upgrade_available and saves, but never switches the part.
    before = env(1, bootcount="1", **PENDING)
    after = env(3, bootcount="2", upgrade_available="0", mender_boot_part="3",
                mender_boot_part_hex="3")  # fmt: skip

    judgement = judged(stock_boot(before, after, running="B"))

    assert judgement.verdict == "violation"
    text = str(judgement.violation)
    assert "slot B started (Linux runs it), expected slot A" in text
    assert "mender_boot_part=3, expected 2" in text


def test_the_slot_of_a_boot_that_never_reported_comes_from_the_env_after() -> None:
    # The failed-health boot of a rollback whose altbootcmd did not switch.
    before = env(1, bootcount="1", **PENDING)
    after = env(3, bootcount="2", upgrade_available="0", mender_boot_part="3",
                mender_boot_part_hex="3")  # fmt: skip

    judgement = judged(stock_boot(before, after, healthy=False))

    assert "slot B started (the env after it names it), expected slot A" in judgement.reason


# --- boots cut short are judged on what they wrote -------------------------


def cut(before: BootEnv, after: BootEnv, at: str = "power-on") -> BootRecord:
    """A boot that never reached Linux: its env after is the disk at the next power-on."""
    return BootRecord(1, 0.0, failure="power cut", env_before=before, env_after=after,
                      env_after_at=at)  # fmt: skip


def test_a_power_cut_between_the_two_rollback_saves_left_a_state_of_the_plan() -> None:
    before = env(1, bootcount="1", **PENDING)
    first_save_only = env(2, bootcount="2", **PENDING)

    assert judged(cut(before, first_save_only)).verdict == "ok"
    assert judged(cut(before, before)).verdict == "ok"  # cut before any save


def test_a_cut_boot_that_wrote_what_no_save_writes_is_a_violation() -> None:
    before = env(1, bootcount="1", **PENDING)
    wrong = env(2, bootcount="7", **PENDING)

    judgement = judged(cut(before, wrong))

    assert judgement.verdict == "violation" and "bootcount=7, expected 2" in judgement.reason


def test_a_watchdog_in_the_bootloader_is_judged_like_a_cut() -> None:
    before = env(1, bootcount="1", **PENDING)
    first_save_only = env(2, bootcount="2", **PENDING)
    boot = replace(cut(before, first_save_only, "reset"), reset_by="watchdog")

    assert judged(boot).verdict == "ok"
    # The same env after a reset the bootloader made itself: the plan must be complete.
    assert judged(replace(boot, reset_by="guest-reset")).verdict == "violation"


# --- the decision line, where an image prints one, is a cross-check --------


def test_a_decision_line_that_disagrees_with_the_observation_is_a_violation() -> None:
    before = env(1, bootcount="1", **PENDING)
    rolled = env(3, bootcount="2")
    boot = replace(stock_boot(before, rolled, running="A"), line=Decision("B", 2, True))

    judgement = judged(boot)

    assert judgement.verdict == "violation"
    assert "decision slot=B bootcount=2 upgrade_available=1, expected slot=A" in judgement.reason
    assert "Linux runs slot A, the bootloader chose B" in judgement.reason


# --- a boot that cannot be judged is counted and named ----------------------


def test_boots_that_cannot_be_judged_are_counted_with_their_reason() -> None:
    before = env()
    boots = [
        stock_boot(before, before, running="A", index=1),
        stock_boot(None, before, running="A", index=2),
        # A bootloader that prints no handoff line: Linux ran before any read.
        replace(stock_boot(before, None, running="A", index=3), handoff=False),
    ]

    judgements = [judged(b) for b in boots]
    counts = tally(judgements)

    assert [j.verdict for j in judgements] == ["ok", "unjudged", "unjudged"]
    assert counts.line() == (
        "1 boots judged, 2 could not be judged: #2 (no env before: the env on the disk when "
        "it began was not read (no host view of the disk, and none read over the shell before "
        "it)), #3 (no env after its bootloader: Linux started before the disk was read (the "
        "bootloader has no handoff line, BootMarkers.handoff))"
    )


def test_a_board_whose_disk_cannot_be_read_at_the_handoff_is_named_so() -> None:
    judgement = judged(stock_boot(env(), None, running="A"))

    assert judgement.verdict == "unjudged"
    assert "could not be read at its handoff" in judgement.reason


def test_the_run_summary_names_each_test_with_an_unjudged_boot() -> None:
    ok = judge_boot(stock_boot(env(), env(), running="A"), SLOTS, UBOOT)
    unjudged = judge_boot(stock_boot(None, env(), running="A", index=2), SLOTS, UBOOT)
    tests = [
        ("test_commit", dict(oracle_properties([ok, ok]))),
        ("test_cut", dict(oracle_properties([ok, unjudged]))),
        ("test_without_boots", {}),
    ]

    lines = oracle_summary(tests)

    assert lines[0] == (
        "3 boots judged, 1 could not be judged — every boot must be judged: "
        "see each one's reason below"
    )
    assert lines[1:] == [
        "  test_cut: 1 boots judged, 1 could not be judged: #2 (no env before: the env on the "
        "disk when it began was not read (no host view of the disk, and none read over the "
        "shell before it))"
    ]
    assert oracle_summary([("test_commit", dict(oracle_properties([ok])))]) == [
        "1 boots judged, 0 could not be judged"
    ]


def test_violations_raise_from_the_judge_with_every_bad_boot() -> None:
    before = env(**PENDING)
    with pytest.raises(ContractViolation, match="boot #1 broke the bootloader contract"):
        ContractJudge(UBOOT, SLOTS)([stock_boot(before, before, running="B")])
    quiet = ContractJudge(UBOOT, SLOTS, enforcing=False)([stock_boot(before, before, running="B")])
    assert [j.verdict for j in quiet] == ["violation"]
