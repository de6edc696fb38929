"""UpdateOutcome over boot sequences shaped like boot.cmd produces them.

boot.cmd counts every boot of a pending update (bootcount += 1) and falls
back to the old slot once bootcount > bootlimit, clearing upgrade_available
and bootcount; a healthy new slot commits by clearing them from Linux.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from harness.bootloaders import BootEnv
from harness.device.boot import BootRecord
from harness.judge.judgement import Decision, Judgement
from harness.judge.verdict import UpdateOutcome, outcome

SETTLED = {"mender_boot_part": "2", "upgrade_available": "0", "bootcount": "0", "bootlimit": "1"}


def env(**changes: str) -> BootEnv:
    return BootEnv({**SETTLED, **changes}, "host:disk.img p1:uboot.env+uboot-redund.env")


def failed_try(index: int, bootcount: int) -> BootRecord:
    """A boot of the new slot B whose health check fails; the device reboots itself."""
    return BootRecord(
        index=index,
        started_at=10.0 * index,
        line=Decision("B", bootcount, True),
        health="fail",
    )


def ready(
    index: int, slot: str, *, bootcount: int, pending: bool, version: str = "1"
) -> BootRecord:
    return BootRecord(
        index=index,
        started_at=10.0 * index,
        line=Decision(slot, bootcount, pending),
        health="pass",
        ready=True,
        running_slot=slot,
        version=version,
        ready_at=10.0 * index + 4.5,
    )


def rollback(bootlimit: int, final_env: Mapping[str, str] | None = None) -> UpdateOutcome:
    boots = [failed_try(i, i) for i in range(1, bootlimit + 1)]
    boots.append(ready(bootlimit + 1, "A", bootcount=0, pending=False))
    return outcome("A", boots, env(bootlimit=str(bootlimit), **(final_env or {})))


@pytest.mark.parametrize("bootlimit", [1, 3])
def test_rollback_after_bootlimit_failed_tries(bootlimit: int) -> None:
    result = rollback(bootlimit)

    assert result.rolled_back, result.describe()
    assert not result.committed
    assert result.bootloader_slots == ["B"] * bootlimit + ["A"]
    assert result.bootcounts == [*range(1, bootlimit + 1), 0]
    assert result.health == ["fail"] * bootlimit + ["pass"]
    assert result.final_slot == "A"


def test_rollback_describe_tells_the_story() -> None:
    assert rollback(1).describe() == (
        "start A → #1:B(bc=1,health=fail), #2:A(bc=0,health=pass) → running A; "
        "env upgrade_available=0 bootcount=0"
    )


def test_commit() -> None:
    boots = [ready(1, "B", bootcount=1, pending=True, version="2")]
    result = outcome("A", boots, env(mender_boot_part="3"))

    assert result.committed, result.describe()
    assert not result.rolled_back
    assert result.bootloader_slots == ["B"]
    assert result.bootcounts == [1]
    assert result.health == ["pass"]
    assert result.final_slot == "B"
    assert result.describe() == (
        "start A → #1:B(bc=1,health=pass) → running B; env upgrade_available=0 bootcount=0"
    )


def test_new_slot_running_but_not_committed_yet() -> None:
    boots = [ready(1, "B", bootcount=1, pending=True, version="2")]
    result = outcome("A", boots, env(mender_boot_part="3", upgrade_available="1", bootcount="1"))

    assert not result.committed
    assert not result.rolled_back
    assert result.final_slot == "B"


def test_update_that_never_left_the_start_slot_is_no_rollback() -> None:
    # The install did not switch the slot: the device simply came back on A.
    result = outcome("A", [ready(1, "A", bootcount=0, pending=False)], env())

    assert not result.rolled_back, result.describe()
    assert not result.committed
    assert result.bootloader_slots == ["A"]
    assert result.final_slot == "A"


def test_rollback_that_left_the_update_pending_is_no_rollback() -> None:
    # Back on A, but the env still asks for the update: the next boot tries B again.
    result = rollback(1, {"upgrade_available": "1", "bootcount": "1"})

    assert result.final_slot == "A"
    assert not result.rolled_back, result.describe()
    assert not result.committed
    assert "upgrade_available=1 bootcount=1" in result.describe()


def test_a_boot_with_no_decision_line_and_no_judgement_started_the_slot_linux_runs() -> None:
    # Stock boards print no "ab-boot:" line; without the oracle's judgement the
    # slot Linux runs is all that is seen, and a count is not.
    boot = BootRecord(index=1, started_at=0.0, ready=True, running_slot="A", version="1")
    result = outcome("A", [boot], env())

    assert result.bootloader_slots == ["A"]
    assert result.bootcounts == [None]
    assert result.health == [None]
    assert not result.rolled_back


def test_a_stock_rollback_reads_from_the_judgements_alone() -> None:
    # No line printed: the oracle's observed decisions are the outcome's.
    trying = Judgement(1, "ok", "pending", Decision("B", 1, True, 1))
    tried = BootRecord(1, 0.0, health="fail", judgement=trying)
    went_back = Judgement(2, "ok", "rollback", Decision("A", 2, False, 2))
    back = BootRecord(2, 9.0, ready=True, running_slot="A", version="1", health="pass",
                      judgement=went_back)  # fmt: skip
    result = outcome("A", [tried, back], env(bootcount="2"))

    assert result.bootloader_slots == ["B", "A"]
    assert result.bootcounts == [1, 2]
    assert result.rolled_back and not result.committed, result.describe()


def test_no_boots_is_neither_outcome() -> None:
    result = outcome("A", [], env())

    assert result.final_slot is None
    assert result.bootloader_slots == []
    assert not result.rolled_back
    assert not result.committed


def test_rollback_from_b_to_a_and_back() -> None:
    # Updating from slot B: the new slot is A, and the rollback returns to B.
    boots = [
        BootRecord(1, 0.0, line=Decision("A", 1, True), health="fail"),
        ready(2, "B", bootcount=0, pending=False),
    ]
    result = outcome("B", boots, env(mender_boot_part="3"))

    assert result.rolled_back
    assert not result.committed


def test_outcome_is_a_frozen_value() -> None:
    result = rollback(1)

    assert isinstance(result.boots, tuple)
    with pytest.raises(AttributeError):
        result.start_slot = "B"  # type: ignore[misc]
