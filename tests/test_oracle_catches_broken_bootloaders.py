"""The oracle against deliberately broken boot scripts, on the real U-Boot.

Each variant below is the shipped boot script with one mistake a real
integration makes (they live here, never in the image). The oracle checks
every boot by itself; each test proves it names the broken boot and the
broken variable — the scenarios, run on the shipped script, prove the other
half: that a correct bootloader passes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from harness.images.diskimage import write_partition_file
from harness.judge.oracle import ContractViolation

pytestmark = pytest.mark.qemu

RECIPE = Path(__file__).resolve().parent.parent / "qemu-images" / "arm64-uboot"


def recipe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("arm64_uboot_recipe", RECIPE / "recipe.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install_broken_script(ab_live, tmp_path: Path, name: str, old: str, new: str) -> None:
    """Put NAME.scr, with `old` replaced by `new`, on the test's disk."""
    text = (RECIPE / f"{name}.cmd").read_text()
    assert text.count(old) == 1, f"the shipped {name}.cmd changed: {old!r} not found once"
    module = recipe()
    profile = module.load_profile(RECIPE / "profile.toml")
    script = module.write_uboot_script(profile, tmp_path, name, text.replace(old, new))
    write_partition_file(ab_live.disk, 1, f"{name}.scr", script.read_bytes())


@pytest.fixture
def start(ab_live, shell, request):
    """Power on the broken device, then hand over a pusher."""

    def started():
        ab_live.strategy.transition("shell")
        return request.getfixturevalue("push")

    return started


def rollback(ab_live, shell, push, payloads, bootlimit: int = 1):
    shell.exec0(f"fw_setenv bootlimit {bootlimit}")
    assert push.install(payloads["v2-bad"]).ok
    return ab_live.strategy.reboot(max_boots=bootlimit + 1)


def test_a_rollback_that_leaves_upgrade_available_set_is_caught(
    ab_live, shell, start, payloads, tmp_path
):
    install_broken_script(
        ab_live,
        tmp_path,
        "boot",
        "  setenv upgrade_available 0\n  why=altbootcmd",
        "  why=altbootcmd",
    )
    push = start()

    with pytest.raises(ContractViolation) as caught:
        rollback(ab_live, shell, push, payloads)

    text = str(caught.value)
    assert text.startswith("boot #3 broke the bootloader contract")
    assert "upgrade_available=1, expected 0" in text


def test_a_rollback_that_resets_bootcount_is_caught(ab_live, shell, start, payloads, tmp_path):
    install_broken_script(
        ab_live,
        tmp_path,
        "boot",
        "  setenv upgrade_available 0\n  why=altbootcmd",
        "  setenv upgrade_available 0\n  setenv bootcount 0\n  why=altbootcmd",
    )
    push = start()

    with pytest.raises(ContractViolation) as caught:
        rollback(ab_live, shell, push, payloads)

    assert "boot #3" in str(caught.value)
    assert "bootcount=0, expected 2" in str(caught.value)


def test_a_save_that_keeps_only_the_contract_variables_is_caught(ab_live, tmp_path):
    # The old reference script's mistake: `env export` with a variable list
    # drops every variable not listed (the canary, anything Linux wrote).
    install_broken_script(
        ab_live,
        tmp_path,
        "saveenv",
        "env export -b -s @ENV_DATA_SIZE@ @ENV_OUT_DATA@",
        "env export -b -s @ENV_DATA_SIZE@ @ENV_OUT_DATA@ mender_boot_part "
        "mender_boot_part_hex upgrade_available bootcount bootlimit",
    )

    with pytest.raises(ContractViolation) as caught:
        ab_live.strategy.transition("shell")

    assert "boot #1" in str(caught.value)
    assert "mender_saveenv_canary=<unset>, expected 1" in str(caught.value)


def test_bootlimit_zero_read_as_roll_back_at_once_is_caught(
    ab_live, shell, start, payloads, tmp_path
):
    install_broken_script(
        ab_live,
        tmp_path,
        "boot",
        "if itest ${limit} != 0 && itest ${bootcount} > ${limit}; then",
        "if itest ${bootcount} > ${limit}; then",
    )
    push = start()
    shell.exec0("fw_setenv bootlimit 0")
    assert push.install(payloads["v2-bad"]).ok

    with pytest.raises(ContractViolation) as caught:
        ab_live.strategy.reboot(max_boots=2)

    assert "boot #2" in str(caught.value)
    assert "decision slot=A" in str(caught.value) and "expected slot=B" in str(caught.value)
