"""The oracle's transition table, on boots described by hand: each row of
Mender's U-Boot contract, and each way a bootloader can break it."""

from dataclasses import replace

import pytest

from harness.bootloaders import BootEnv, UBootFileEnv
from harness.device.boot import BootRecord, EnvSave
from harness.judge.judgement import Decision, Violation
from harness.judge.oracle import ContractJudge, ContractViolation, judge_boot, predict
from harness.targets.target import EnvLocation

SLOTS = {"A": 2, "B": 3}
FILES = ("uboot.env", "uboot-redund.env")
UBOOT = UBootFileEnv(EnvLocation(1, FILES, 0x4000))
BASE = {
    "mender_boot_part": "2",
    "mender_boot_part_hex": "2",
    "upgrade_available": "0",
    "bootcount": "0",
    "bootlimit": "1",
    "mender_saveenv_canary": "1",
}


def env(copy: str = "uboot.env", flags: int = 4, **changes: str) -> BootEnv:
    return BootEnv({**BASE, **changes}, "test", {"copy": copy, "flags": str(flags)})


def boot(
    before: BootEnv,
    slot: str,
    bootcount: int,
    upgrade: bool,
    saves: tuple[tuple[str, str, int], ...] = (),
    after: BootEnv | None = None,
) -> BootRecord:
    return BootRecord(
        index=1,
        started_at=0.0,
        line=Decision(slot, bootcount, upgrade),
        saves=tuple(EnvSave(why, file, flags) for why, file, flags in saves),
        env_before=before,
        env_after=after if after is not None else before,
        env_after_at="decision",
    )


def violation_of(record: BootRecord) -> Violation | None:
    """The oracle's violation for one boot (None: it kept the contract)."""
    judgement = judge_boot(record, SLOTS, UBOOT)
    assert judgement.verdict != "unjudged", judgement
    return judgement.violation


def test_nothing_pending_boots_the_same_slot_and_writes_nothing() -> None:
    before = env()
    assert violation_of(boot(before, "A", 1, False)) is None


def test_pending_update_counts_the_boot_in_the_other_copy() -> None:
    before = env(upgrade_available="1", mender_boot_part="3", mender_boot_part_hex="3")
    after = env("uboot-redund.env", 5, upgrade_available="1", mender_boot_part="3",
                mender_boot_part_hex="3", bootcount="1")  # fmt: skip
    record = boot(before, "B", 1, True, (("bootcount", "uboot-redund.env", 5),), after)

    assert violation_of(record) is None


def test_bootlimit_exceeded_runs_altbootcmd_with_two_saves() -> None:
    before = env(
        upgrade_available="1", mender_boot_part="3", mender_boot_part_hex="3", bootcount="1"
    )
    after = env("uboot.env", 6, bootcount="2")
    saves = (("bootcount", "uboot-redund.env", 5), ("altbootcmd", "uboot.env", 6))

    assert violation_of(boot(before, "A", 2, False, saves, after)) is None


def test_bootlimit_zero_never_rolls_back() -> None:
    before = env(upgrade_available="1", mender_boot_part="3", mender_boot_part_hex="3",
                 bootcount="41", bootlimit="0")  # fmt: skip
    expected, _ = predict(before, SLOTS, UBOOT)

    assert (expected.slot, expected.bootcount, expected.upgrade_available) == ("B", 42, True)
    assert expected.env_after["bootcount"] == "42"


def test_counts_are_decimal_past_nine() -> None:
    before = env(upgrade_available="1", mender_boot_part="3", mender_boot_part_hex="3",
                 bootcount="9", bootlimit="10")  # fmt: skip
    expected, _ = predict(before, SLOTS, UBOOT)

    assert (expected.slot, expected.bootcount) == ("B", 10)


def test_a_missing_canary_is_set_and_saved_with_the_ram_bootcount() -> None:
    before = BootEnv({k: v for k, v in BASE.items() if k != "mender_saveenv_canary"}, "t",
                     {"copy": "uboot.env", "flags": "1"})  # fmt: skip
    expected, _ = predict(before, SLOTS, UBOOT)

    assert expected.saves == (("uboot-redund.env", 2),)
    assert expected.env_after["mender_saveenv_canary"] == "1"
    assert expected.env_after["bootcount"] == "1"  # U-Boot's RAM count goes out with the save


def test_no_valid_copy_means_mender_defaults_and_a_save_to_the_first_copy() -> None:
    expected, _ = predict(BootEnv({}, "t", {"copy": "none"}), SLOTS, UBOOT)

    assert expected.slot == "A" and expected.saves == (("uboot.env", 1),)


def test_saves_alternate_copies_and_the_flags_wrap() -> None:
    before = env("uboot-redund.env", 254, upgrade_available="1", mender_boot_part="3",
                 mender_boot_part_hex="3", bootcount="1")  # fmt: skip
    before = BootEnv({k: v for k, v in before.vars.items() if k != "mender_saveenv_canary"},
                     "t", before.detail)  # fmt: skip
    expected, _ = predict(before, SLOTS, UBOOT)

    assert expected.saves == (("uboot.env", 255), ("uboot-redund.env", 0), ("uboot.env", 1))


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        pytest.param(
            dict(after_changes={"upgrade_available": "1"}, upgrade=True),
            "upgrade_available",
            id="rollback-leaves-upgrade-available",
        ),
        pytest.param(
            dict(after_changes={"bootcount": "0"}, bootcount=0),
            "bootcount",
            id="rollback-resets-bootcount",
        ),
        pytest.param(
            dict(after_changes={"mender_boot_part_hex": "3"}),
            "mender_boot_part_hex=3 does not follow mender_boot_part=2",
            id="hex-does-not-follow",
        ),
        pytest.param(
            dict(after_changes={"ab_flag": "6"}),
            "bookkeeping saved into the env: ab_flag",
            id="temporaries-saved",
        ),
        pytest.param(
            dict(after_drop="artifact_name"),
            "artifact_name=<unset>",
            id="save-drops-a-variable",
        ),
        pytest.param(
            dict(
                saves=(("bootcount", "uboot-redund.env", 5), ("altbootcmd", "uboot-redund.env", 6))
            ),
            "saves",
            id="save-to-the-same-copy",
        ),
    ],
)
def test_each_broken_rollback_is_named(broken: dict, complaint: str) -> None:
    before = env(upgrade_available="1", mender_boot_part="3", mender_boot_part_hex="3",
                 bootcount="1", artifact_name="release-2")  # fmt: skip
    good_after = env("uboot.env", 6, bootcount="2", artifact_name="release-2")
    vars_after = {**good_after.vars, **broken.get("after_changes", {})}
    vars_after.pop(broken.get("after_drop", ""), None)
    after = BootEnv(vars_after, "t", good_after.detail)
    saves = broken.get(
        "saves", (("bootcount", "uboot-redund.env", 5), ("altbootcmd", "uboot.env", 6))
    )
    record = boot(before, "A", broken.get("bootcount", 2), broken.get("upgrade", False), saves,
                  after)  # fmt: skip

    violation = violation_of(record)

    assert violation is not None
    assert complaint in str(violation), str(violation)
    assert str(violation).startswith("boot #1 broke the bootloader contract")


def test_linux_running_another_slot_than_chosen_is_a_violation() -> None:
    record = replace(boot(env(), "A", 1, False), ready=True, running_slot="B")

    assert "Linux runs slot B" in str(violation_of(record))


def test_a_boot_that_failed_must_not_write_the_env_before_the_next() -> None:
    pending = env("uboot-redund.env", 5, upgrade_available="1", mender_boot_part="3",
                  mender_boot_part_hex="3", bootcount="1")  # fmt: skip
    first = replace(boot(env(upgrade_available="1", mender_boot_part="3", mender_boot_part_hex="3"),
                         "B", 1, True, (("bootcount", "uboot-redund.env", 5),), pending),
                    failure="health check failed")  # fmt: skip
    committed_meanwhile = env("uboot.env", 6, upgrade_available="0", mender_boot_part="3",
                              mender_boot_part_hex="3", bootcount="1")  # fmt: skip
    second = replace(boot(committed_meanwhile, "B", 1, False), index=2)

    with pytest.raises(ContractViolation, match="although boot #1 ended with 'health check"):
        ContractJudge(UBOOT, SLOTS)([first, second])


def test_boots_without_a_readable_disk_are_counted_as_not_judged_with_the_reason() -> None:
    record = replace(boot(env(), "B", 7, True), env_before=None)
    judgement = judge_boot(record, SLOTS, UBOOT)
    assert (judgement.verdict, judgement.violation) == ("unjudged", None)
    assert judgement.reason.startswith("no env before")


def test_a_save_writes_the_boards_own_fdtcontroladdr_but_keeps_every_other_variable() -> None:
    # An env taken from another board (a field bundle) says where that board's
    # device tree was; U-Boot overrides it at start, and its saves write its own.
    before = env(upgrade_available="1", mender_boot_part="3", mender_boot_part_hex="3",
                 bootcount="1", fdtcontroladdr="5edb6db0", artifact_name="v2")  # fmt: skip
    after = env("uboot.env", 6, bootcount="2", fdtcontroladdr="5edf7eb0", artifact_name="v2")
    saves = (("bootcount", "uboot-redund.env", 5), ("altbootcmd", "uboot.env", 6))
    assert violation_of(boot(before, "A", 2, False, saves, after)) is None

    dropped = env("uboot.env", 6, bootcount="2", fdtcontroladdr="5edf7eb0")
    violation = violation_of(boot(before, "A", 2, False, saves, dropped))
    assert violation is not None and "artifact_name" in str(violation)
