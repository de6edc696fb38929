"""SWUpdate's dual-copy U-Boot contract (`uboot-swupdate`) judging simulated
boots: U-Boot counts boots while `upgrade_available` is set, and past
`bootlimit` its `altbootcmd` toggles the slot variable (`bootpart`, set by
the .swu's `bootenv`), sets `ustate=3` and clears the flag. The envs are
written out by hand, so a broken contract module fails these tests."""

from __future__ import annotations

import pytest

from harness.bootloaders import KINDS, UBootSwupdateEnv, bootloader_for
from harness.errors import HarnessConfigError
from harness.judge.judgement import Decision
from harness.judge.oracle import ContractJudge, ContractViolation, judge_boot
from harness.targets.target import EnvLocation
from tests.contract_kit import SLOTS, boot, no_valid_copy, redundant

SWU = UBootSwupdateEnv(EnvLocation(0, (), 0x4000, (0x400000, 0x800000)))
SETTLED = {
    "bootpart": "0:2",
    "upgrade_available": "0",
    "bootcount": "0",
    "bootlimit": "2",
    "ustate": "0",
}
# After `swupdate -i` from A: its bootenv switched bootpart and set
# upgrade_available, SWUpdate itself set ustate=1 (INSTALLED).
INSTALLED = {**SETTLED, "bootpart": "0:3", "upgrade_available": "1", "ustate": "1"}


def test_the_kind_is_registered_and_keeps_its_env_at_offsets() -> None:
    assert KINDS["uboot-swupdate"] is UBootSwupdateEnv
    assert isinstance(bootloader_for("uboot-swupdate", SWU.location), UBootSwupdateEnv)
    with pytest.raises(HarnessConfigError, match="keeps its env at raw offsets"):
        UBootSwupdateEnv(EnvLocation(1, ("uboot.env",), 0x4000))
    assert SWU.variables == ("bootpart", "upgrade_available", "bootcount", "bootlimit", "ustate")


def test_a_good_boot_with_nothing_pending_writes_nothing() -> None:
    judgement = judge_boot(boot(redundant(4, SETTLED), redundant(4, SETTLED), "A"), SLOTS, SWU)

    assert judgement.verdict == "ok", judgement
    assert judgement.decision == Decision("A", None, False, 0)
    assert SWU.settled(redundant(4, SETTLED), SLOTS) is None


def test_a_failed_trial_counts_to_the_limit_then_altbootcmd_falls_back() -> None:
    envs = [
        redundant(4, INSTALLED),
        redundant(5, {**INSTALLED, "bootcount": "1"}),
        redundant(6, {**INSTALLED, "bootcount": "2"}),
        # bootcount_store (flags 7), then altbootcmd's saveenv (flags 8).
        redundant(8, {**SETTLED, "bootcount": "3", "ustate": "3"}),
    ]
    boots = [boot(envs[i], envs[i + 1], index=i + 1, healthy=False) for i in range(2)]
    boots.append(boot(envs[2], envs[3], "A", index=3))

    judgements = ContractJudge(SWU, SLOTS)(boots)

    assert [j.verdict for j in judgements] == ["ok"] * 3, judgements
    assert [j.decision.slot for j in judgements if j.decision] == ["B", "B", "A"]
    assert SWU.settled(envs[3], SLOTS) is None
    assert SWU.bootcount_after_rollback(2) == 3


def test_mark_good_stops_the_count_and_rollback_is_altbootcmds() -> None:
    assert SWU.mark_good({**INSTALLED, "bootcount": "1"}, "B") == {
        **INSTALLED,
        **{"upgrade_available": "0", "bootcount": "0", "ustate": "0"},
    }
    assert SWU.rollback(INSTALLED, "B", SLOTS) == {
        **INSTALLED,
        "bootpart": "0:2",
        "ustate": "3",
        "upgrade_available": "0",
    }
    assert SWU.settled(redundant(5, INSTALLED), SLOTS) == (
        "upgrade_available is set: U-Boot counts boots towards a fallback"
    )
    # SWUpdate's ustate=1 with U-Boot's flag unset: under test, never counted.
    assert SWU.settled(redundant(5, {**INSTALLED, "upgrade_available": "0"}), SLOTS) == (
        "ustate=1: the update is under test, but upgrade_available=0: "
        "U-Boot counts none of its boots and never falls back"
    )


def test_with_no_valid_copy_u_boot_boots_its_default_env_and_saves_nothing() -> None:
    expected, start = SWU.predict(no_valid_copy(), SLOTS)

    assert (start, expected.transition.saves, expected.slot) == ({}, 0, "?")
    assert judge_boot(boot(no_valid_copy(), no_valid_copy()), SLOTS, SWU).verdict == "ok"


def test_env_problems_name_the_missing_and_the_invalid() -> None:
    assert SWU.env_problems(SETTLED) == []
    assert SWU.env_problems({"bootcount": "x1", "ustate": "9"}) == [
        "bootpart=<unset> names no partition",
        "bootcount=x1 is not a decimal number: U-Boot reads its digits",
        "ustate=9 is no SWUpdate state (0-7)",
    ]


# --- bootloaders that break the contract --------------------------------------


def caught(before: dict[str, str], flags_after: int, after: dict[str, str], running: str) -> str:
    with pytest.raises(ContractViolation) as info:
        judge = ContractJudge(SWU, SLOTS)
        judge([boot(redundant(4, before), redundant(flags_after, after), running)])
    return str(info.value)


def test_a_fallback_that_leaves_ustate_installed_is_caught() -> None:
    at_limit = {**INSTALLED, "bootcount": "2"}

    text = caught(at_limit, 6, {**SETTLED, "bootcount": "3", "ustate": "1"}, "A")

    assert "env after: ustate=1, expected 3" in text


def test_a_bootloader_that_does_not_count_a_trial_boot_is_caught() -> None:
    text = caught(INSTALLED, 4, INSTALLED, "B")

    assert "0 env saves" in text and "expected 1" in text


def test_a_bootloader_that_falls_back_before_the_limit_is_caught() -> None:
    text = caught(INSTALLED, 6, {**SETTLED, "bootcount": "1", "ustate": "3"}, "A")

    assert "slot A started (Linux runs it), expected slot B" in text
    assert "env after: bootpart=0:2, expected 0:3" in text
