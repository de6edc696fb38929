"""The oracle on the stock device: U-Boot's own C code decides every boot and
prints none of our lines, so each verdict comes from the env on the SD card
and the slot Linux runs. Two deliberately wrong configurations of Mender's
chain, written into the device's env with its own fw_setenv, are caught at
the boot where they go wrong."""

from __future__ import annotations

import pytest

from harness.judge.oracle import ContractViolation
from harness.judge.verdict import outcome

pytestmark = [pytest.mark.qemu, pytest.mark.ab_target("qemu-arm64-uboot-stock")]


def test_a_rollback_on_the_stock_uboot_is_judged_from_the_disk(
    ab_live, booted, push, observe, payloads
):
    assert push.install(payloads["v2-bad"]).ok
    result = outcome("A", booted.reboot(max_boots=2), observe.env_host("after rollback"))

    console = ab_live.recorder.raw(0, ab_live.recorder.size)
    assert b"ab-boot:" not in console  # nothing of ours: U-Boot's own lines only
    assert b"Warning: Bootlimit (1) exceeded. Using altbootcmd." in console
    history = ab_live.watcher.history
    assert [b.line for b in history] == [None] * len(history)
    assert [b.judgement.verdict for b in history] == ["ok"] * len(history)
    assert result.rolled_back and result.bootloader_slots == ["B", "A"], result.describe()


@pytest.mark.parametrize(
    ("chain", "caught"),
    [
        # altbootcmd runs, but the slot is not switched: the trial slot boots again.
        ("altbootcmd=run bootcmd", "expected slot A"),
        # mender_altbootcmd switches the slot but leaves the update pending.
        pytest.param(
            "mender_altbootcmd=if test ${mender_boot_part} = 2; then setenv mender_boot_part 3; "
            "setenv mender_boot_part_hex 3; else setenv mender_boot_part 2; "
            "setenv mender_boot_part_hex 2; fi; saveenv; run mender_setup",
            "upgrade_available=1, expected 0",
            marks=pytest.mark.nightly,
        ),
    ],
    ids=["altbootcmd-does-not-switch", "rollback-keeps-pending"],
)
def test_a_wrong_mender_chain_in_the_env_is_caught(
    ab_live, booted, push, shell, payloads, chain, caught
):
    shell.exec0(f"printf '%s\\n' '{chain}' > /tmp/chain && fw_setenv -s /tmp/chain")
    assert push.install(payloads["v2-bad"]).ok

    with pytest.raises(ContractViolation) as violation:
        ab_live.strategy.reboot(max_boots=3)

    assert caught in str(violation.value), str(violation.value)
