"""RAUC's GRUB contract (`grub-rauc`) judging simulated boots: each boot marks
its slot tried (`<slot>_TRY=1`), a tried slot that was not marked good again
is passed over for the next `_OK` one in `ORDER`, and with none GRUB boots
its rescue entry. The envs are written out by hand, as RAUC's grub.cfg and
grub-editenv leave them, so a broken contract module fails these tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bootloaders import KINDS, BootEnv, GrubRaucEnv, bootloader_for
from harness.bootloaders.grub_rauc import run_script
from harness.envformat import encode_grubenv
from harness.judge.judgement import Decision
from harness.judge.oracle import ContractJudge, ContractViolation, judge_boot
from harness.targets.target import EnvLocation
from tests.contract_kit import SLOTS, boot, no_valid_copy
from tests.fatdisk import build_fat_disk

FILE = "EFI/BOOT/grubenv"
RAUC = GrubRaucEnv(EnvLocation(1, (FILE,), 1024))
GOOD = {"ORDER": "A B", "A_OK": "1", "A_TRY": "0", "B_OK": "1", "B_TRY": "0"}
# `rauc install` from A: B first in ORDER, B_OK=1 B_TRY=0.
INSTALLED = {**GOOD, "ORDER": "B A"}


def grubenv(**vars: str) -> BootEnv:
    return BootEnv(vars, "test", {"copy": FILE})


def test_the_kind_is_registered_with_one_grubenv_file() -> None:
    assert KINDS["grub-rauc"] is GrubRaucEnv
    assert isinstance(bootloader_for("grub-rauc", RAUC.location), GrubRaucEnv)
    assert RAUC.variables == ("ORDER", "A_OK", "A_TRY", "B_OK", "B_TRY")


def test_a_good_boot_marks_its_slot_tried() -> None:
    after = grubenv(**{**GOOD, "A_TRY": "1"})

    judgement = judge_boot(boot(grubenv(**GOOD), after, "A"), SLOTS, RAUC)

    assert judgement.verdict == "ok", judgement
    assert judgement.decision == Decision("A", None, False, None)
    assert RAUC.settled(after, SLOTS) == (
        "A_TRY=1: slot A booted without a mark-good since; the next boot starts B"
    )


def test_a_failed_trial_gets_one_try_then_the_next_ok_slot_starts() -> None:
    tried = grubenv(**{**INSTALLED, "B_TRY": "1"})
    fell_back = grubenv(**{**INSTALLED, "B_TRY": "1", "A_TRY": "1"})
    boots = [
        boot(grubenv(**INSTALLED), tried, index=1, healthy=False),
        boot(tried, fell_back, "A", index=2),
    ]

    judgements = ContractJudge(RAUC, SLOTS)(boots)

    assert [j.verdict for j in judgements] == ["ok", "ok"], judgements
    assert judgements[1].reason == (
        "first slot of ORDER was tried without a mark-good: boot the next OK, untried slot"
    )


def test_mark_good_and_mark_bad_write_what_rauc_writes() -> None:
    booted = {**GOOD, "A_TRY": "1"}

    assert RAUC.mark_good(booted, "A") == GOOD
    assert RAUC.settled(grubenv(**GOOD), SLOTS) is None
    assert RAUC.rollback(INSTALLED, "B", SLOTS) == {**INSTALLED, "B_OK": "0", "B_TRY": "0"}


def test_with_no_slot_untried_grub_boots_rescue_and_clears_the_ok_slots_tries() -> None:
    both_tried = {**GOOD, "A_TRY": "1", "B_TRY": "1"}
    expected, _ = RAUC.predict(grubenv(**both_tried), SLOTS)

    assert expected.slot == "rescue"
    assert {k: expected.env_after[k] for k in ("A_TRY", "B_TRY")} == {"A_TRY": "0", "B_TRY": "0"}
    judgement = judge_boot(boot(grubenv(**both_tried), grubenv(**GOOD)), SLOTS, RAUC)
    assert judgement.verdict == "ok", judgement


def test_a_torn_grubenv_boots_rescue_and_stays_as_it_is(tmp_path: Path) -> None:
    # GRUB's load_env and save_env both refuse a file without a grubenv block.
    expected, _ = RAUC.predict(no_valid_copy(), SLOTS)
    assert (expected.slot, expected.transition.saves) == ("rescue", 0)
    assert judge_boot(boot(no_valid_copy(), no_valid_copy()), SLOTS, RAUC).verdict == "ok"

    disk = build_fat_disk(tmp_path, {FILE: encode_grubenv(GOOD)})
    assert RAUC.env_from_image(disk).vars == GOOD
    proof = RAUC.corrupt_env_copy(disk, "newest")
    assert proof["corrupted"] == [FILE] and proof["valid_after"] == []
    assert RAUC.env_from_image(disk).detail["copy"] == "none"


def test_env_problems_name_the_missing_and_the_invalid() -> None:
    assert RAUC.env_problems(GOOD) == []
    assert RAUC.env_problems({"A_OK": "1", "A_TRY": "2", "B_OK": "1", "B_TRY": "0"}) == [
        "ORDER is unset or empty",
        "A_TRY=2 is not 0 or 1",
    ]


# --- bootloaders that break the contract --------------------------------------


def caught(before: dict[str, str], after: dict[str, str], running: str) -> str:
    with pytest.raises(ContractViolation) as info:
        ContractJudge(RAUC, SLOTS)([boot(grubenv(**before), grubenv(**after), running)])
    return str(info.value)


def test_a_bootloader_that_does_not_mark_its_slot_tried_is_caught() -> None:
    text = caught(GOOD, GOOD, "A")

    assert "env after: A_TRY=0, expected 1" in text


def test_a_bootloader_that_ignores_order_is_caught() -> None:
    text = caught(INSTALLED, {**INSTALLED, "A_TRY": "1"}, "A")

    assert "slot A started (Linux runs it), expected slot B" in text
    assert "env after: B_TRY=0, expected 1" in text


def test_a_bootloader_that_boots_a_tried_slot_again_is_caught() -> None:
    tried = {**INSTALLED, "B_TRY": "1"}

    text = caught(tried, tried, "B")

    assert "slot B started (Linux runs it), expected slot A" in text


def test_a_slot_that_never_reached_linux_stays_ok_and_comes_back_after_one_cut_boot() -> None:
    # B's kernel never ran, so nothing on Linux marked it bad: GRUB left it
    # OK and tried, and A was marked good. The env now reads as an update on trial.
    after_fallback = {**INSTALLED, "B_TRY": "1"}
    assert RAUC.settled(grubenv(**after_fallback), SLOTS) is not None
    # One boot of A that ends before its mark-good (a power cut) spends A's try...
    _, slot, cut = run_script(after_fallback, SLOTS)
    assert (slot, cut["A_TRY"], cut["B_TRY"]) == ("A", "1", "1")
    # ...so the next boot finds no OK, untried slot and clears every OK slot's try,
    _, slot, cleared = run_script(cut, SLOTS)
    assert slot == "rescue" and (cleared["A_TRY"], cleared["B_TRY"]) == ("0", "0")
    # and the boot after that starts the slot that never booted again.
    assert run_script(cleared, SLOTS)[1] == "B"
    # RAUC's mark-bad of B, had anything run it, keeps B out for good.
    marked = RAUC.rollback(after_fallback, "B", SLOTS)
    assert RAUC.settled(grubenv(**marked), SLOTS) is None
    _, slot, cut = run_script(marked, SLOTS)
    _, slot, cleared = run_script(cut, SLOTS)
    assert slot == "rescue" and run_script(cleared, SLOTS)[1] == "A"
