"""RAUC's U-Boot contract (`uboot-rauc`) judging simulated boots: every boot
spends one of its slot's tries (`BOOT_<slot>_LEFT`, hex), a slot with none
left is skipped, `rauc status mark-good` fills them again. The envs are
written out by hand, as RAUC's boot script and backend leave them, so a
broken contract module fails these tests rather than agreeing with itself."""

from __future__ import annotations

import pytest

from harness.bootloaders import KINDS, UBootRaucEnv, bootloader_for
from harness.errors import HarnessConfigError
from harness.judge.judgement import Decision
from harness.judge.oracle import ContractJudge, ContractViolation, judge_boot
from harness.targets.target import EnvLocation
from tests.contract_kit import COPIES, SLOTS, boot, no_valid_copy, redundant

RAUC = UBootRaucEnv(EnvLocation(0, (), 0x4000, (0x400000, 0x800000)))
GOOD = {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}
# `rauc install` from A: B first in BOOT_ORDER with boot-attempts-primary tries.
INSTALLED = {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}


def test_the_kind_is_registered_and_keeps_its_env_at_offsets() -> None:
    assert KINDS["uboot-rauc"] is UBootRaucEnv
    assert isinstance(bootloader_for("uboot-rauc", RAUC.location), UBootRaucEnv)
    with pytest.raises(HarnessConfigError, match="keeps its env at raw offsets"):
        UBootRaucEnv(EnvLocation(1, ("uboot.env",), 0x4000))
    assert RAUC.variables == ("BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT")


def test_a_good_boot_spends_one_try_of_the_first_slot_and_saves_once() -> None:
    before = redundant(4, GOOD)
    after = redundant(5, {**GOOD, "BOOT_A_LEFT": "2"})

    judgement = judge_boot(boot(before, after, "A"), SLOTS, RAUC)

    assert judgement.verdict == "ok", judgement
    assert judgement.decision == Decision("A", None, False, 1)
    assert RAUC.settled(after, SLOTS) == (
        "BOOT_A_LEFT=2: slot A booted without a mark-good since; "
        "2 more such boots and BOOT_ORDER's next slot starts"
    )


def test_a_failed_trial_spends_its_tries_then_the_next_slot_starts() -> None:
    envs = [
        redundant(4, INSTALLED),
        redundant(5, {**INSTALLED, "BOOT_B_LEFT": "2"}),
        redundant(6, {**INSTALLED, "BOOT_B_LEFT": "1"}),
        redundant(7, {**INSTALLED, "BOOT_B_LEFT": "0"}),
        redundant(8, {**INSTALLED, "BOOT_B_LEFT": "0", "BOOT_A_LEFT": "2"}),
    ]
    boots = [boot(envs[i], envs[i + 1], index=i + 1, healthy=False) for i in range(3)]
    boots.append(boot(envs[3], envs[4], "A", index=4))

    judgements = ContractJudge(RAUC, SLOTS)(boots)

    assert [j.verdict for j in judgements] == ["ok"] * 4, judgements
    assert judgements[3].reason == (
        "first slot of BOOT_ORDER has no tries left: spend one of the next slot's, boot it"
    )


def test_mark_good_fills_the_tries_and_mark_bad_drops_the_slot() -> None:
    booted = {**GOOD, "BOOT_A_LEFT": "2"}

    assert RAUC.mark_good(booted, "A") == GOOD
    assert RAUC.settled(redundant(6, GOOD), SLOTS) is None
    assert RAUC.rollback(INSTALLED, "B", SLOTS) == {
        **INSTALLED,
        "BOOT_ORDER": "A",
        "BOOT_B_LEFT": "0",
    }
    # After a mark-good the next boot spends a try again, from the full count.
    expected, _ = RAUC.predict(redundant(6, GOOD), SLOTS)
    assert (expected.slot, expected.env_after["BOOT_A_LEFT"]) == ("A", "2")


def test_tries_are_hex_as_rauc_writes_them() -> None:
    ten = {**GOOD, "BOOT_A_LEFT": "a"}  # `rauc status mark-good` with boot-attempts=10

    expected, _ = RAUC.predict(redundant(4, ten), SLOTS)

    assert expected.env_after["BOOT_A_LEFT"] == "9"
    assert UBootRaucEnv(RAUC.location, attempts=10).mark_good(GOOD, "A")["BOOT_A_LEFT"] == "a"


def test_no_slot_left_resets_every_slot_and_starts_none() -> None:
    spent = {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "0"}
    after = redundant(5, GOOD)

    judgement = judge_boot(boot(redundant(4, spent), after), SLOTS, RAUC)

    assert judgement.verdict == "ok", judgement
    assert judgement.reason == "no slot has tries left: reset every slot's tries, reset the board"


def test_with_no_valid_copy_the_script_fills_its_defaults_and_saves_them() -> None:
    # U-Boot's default env holds none of RAUC's variables; its first save goes
    # to the redundant copy with flags 1.
    after = redundant(1, {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "3"})
    assert after.detail["copy"] == COPIES[1]

    judgement = judge_boot(boot(no_valid_copy(), after, "A"), SLOTS, RAUC)

    assert judgement.verdict == "ok", judgement


def test_env_problems_name_the_missing_and_the_unreadable() -> None:
    assert RAUC.env_problems(GOOD) == []
    assert RAUC.env_problems({"BOOT_A_LEFT": "zz", "BOOT_B_LEFT": "0"}) == [
        "BOOT_ORDER is unset or empty: the script boots its default order",
        "BOOT_A_LEFT=zz is not a hex count: read as 0",
    ]
    assert RAUC.env_problems({"BOOT_ORDER": "A C", "BOOT_A_LEFT": "1"}) == [
        "BOOT_C_LEFT is unset",
        "BOOT_B_LEFT is unset",
    ]


# --- bootloaders that break the contract --------------------------------------


def caught(*boots_: object) -> str:
    with pytest.raises(ContractViolation) as info:
        ContractJudge(RAUC, SLOTS)(list(boots_))  # type: ignore[arg-type]
    return str(info.value)


def test_a_bootloader_that_does_not_spend_the_try_is_caught() -> None:
    text = caught(boot(redundant(4, GOOD), redundant(5, GOOD), "A"))

    assert text.startswith("boot #1 broke the bootloader contract")
    assert "env after: BOOT_A_LEFT=3, expected 2" in text


def test_a_bootloader_that_boots_a_slot_with_no_tries_left_is_caught() -> None:
    spent_b = {**INSTALLED, "BOOT_B_LEFT": "0"}

    text = caught(boot(redundant(4, spent_b), redundant(5, spent_b), "B"))

    assert "slot B started (Linux runs it), expected slot A" in text
    assert "env after: BOOT_A_LEFT=3, expected 2" in text


def test_a_bootloader_that_saves_nothing_is_caught() -> None:
    text = caught(boot(redundant(4, GOOD), redundant(4, GOOD), "A"))

    assert "0 env saves" in text and "expected 1" in text


def test_a_bootloader_that_never_resets_spent_tries_is_caught() -> None:
    spent = {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "0"}

    text = caught(boot(redundant(4, spent), redundant(5, spent)))

    assert "env after: BOOT_A_LEFT=0, expected 3" in text
