"""The finding behind the agent's double commit, shown on the real U-Boot: a
commit written to ONE env copy leaves the other copy one save behind, saying
"on trial, bootcount=1"; when the newest copy is lost, U-Boot falls back to
it, counts the boot past bootlimit and rolls a committed update back."""

import pytest

pytestmark = pytest.mark.qemu


def test_a_commit_in_one_copy_only_is_undone_by_losing_that_copy(
    booted, push, observe, shell, faults, payloads
):
    assert push.install(payloads["v2"]).ok
    assert [b.running_slot for b in booted.reboot()] == ["B"]
    # Rewrite the two copies as a single-write commit leaves them: the older
    # one as the trial boot saved it, the newer one committed.
    shell.exec0("fw_setenv -s - <<'EOF'\nupgrade_available=1\nbootcount=1\nEOF")
    shell.exec0("fw_setenv upgrade_available 0 && sync")
    booted.power_cut()
    faults.corrupt_env_copy("newest")

    boots = booted.power_on(max_boots=1)

    assert [(b.bootloader_slot, b.running_slot) for b in boots] == [("A", "A")]
    assert boots[0].saves and boots[0].saves[-1].why == "altbootcmd"
