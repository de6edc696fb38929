"""Every env save, seen on the real U-Boot: each one writes the other copy
with the flags byte one higher, the whole env survives it (variables Linux
wrote included), and nothing of the boot script's own bookkeeping leaks in."""

import itertools

import pytest

from harness.judge.verdict import outcome

pytestmark = pytest.mark.qemu


def test_each_save_alternates_copies_bumps_flags_and_keeps_every_variable(
    booted, push, observe, shell, payloads
):
    first = booted.history[0]
    # Mender's canary: U-Boot sets it on the first boot and saves (the image ships without it).
    assert [s.why for s in first.saves] == ["canary"]
    assert first.env_before is not None and "mender_saveenv_canary" not in first.env_before.vars
    writes = [copy_of(first.env_before), *((s.file, s.flags) for s in first.saves)]
    # Linux's saves (fw_setenv, one per call), read back from the disk after each.
    for command in ("fw_setenv artifact_name release-1", "fw_setenv my_app_setting 'a b=c'"):
        shell.exec0(command)
        writes.append(copy_of(observe.env_host(command)))
    assert push.install(payloads["v2-bad"]).ok
    writes.append(copy_of(observe.env_host("after install")))

    result = outcome("A", booted.reboot(max_boots=2), observe.env_host("after rollback"))
    assert result.rolled_back, result.describe()
    for boot in result.boots:
        assert boot.env_before is not None and copy_of(boot.env_before) == writes[-1]
        writes += [(s.file, s.flags) for s in boot.saves]
    assert [s.why for s in result.boots[-1].saves] == ["bootcount", "altbootcmd"]

    assert len(writes) == 8, writes
    for (file_a, flags_a), (file_b, flags_b) in itertools.pairwise(writes):
        assert file_b != file_a, writes
        assert flags_b == (flags_a + 1) % 256, writes

    env = result.env
    assert (env.get("artifact_name"), env.get("my_app_setting")) == ("release-1", "a b=c")
    assert env.get("mender_saveenv_canary") == "1"
    assert not [k for k in env.vars if k.startswith("ab_") or k in ("filesize", "fileaddr")]
    assert env.get("mender_boot_part_hex") == env.get("mender_boot_part") == "2"
    # Linux reads what U-Boot wrote: fw_printenv agrees with the host's reading.
    assert observe.env_device("device view").as_dict() == env.as_dict()


def copy_of(env) -> tuple[str, int]:
    return env.detail["copy"], int(env.detail["flags"])
