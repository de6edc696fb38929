"""U-Boot built from Debian's source for the stock image: it has what Mender
requires of a board, and its own C code (bootcount_env, the redundant env on
the SD card, altbootcmd) rolls back the slot, with no boot script deciding.

The build is the cached one (imagekit.uboot, ~1 min the first time)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.envformat.uboot import UBootEnv, parse_env_copies
from harness.images import default_cache_dir

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "qemu-images"))

from imagekit.debs import AptRoot
from imagekit.run import BuildError
from imagekit.uboot import UBootBuild, build_uboot, check_config, config_of, read_env_text

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "qemu-images" / "arm64-uboot-stock"
ENV_SIZE = 0x4000
ENV_OFFSETS = (0x400000, 0x800000)
SD_BYTES = 16 << 20  # QEMU's sd-card wants a power of two; both env copies fit
BOOT_DEADLINE_S = 60.0

# What Mender requires of a board's U-Boot, as this build must have it.
REQUIRED = (
    "CONFIG_BOOTCOUNT_LIMIT=y",
    "CONFIG_BOOTCOUNT_ENV=y",
    "CONFIG_ENV_IS_IN_MMC=y",
    "# CONFIG_ENV_IS_IN_FLASH is not set",
    "CONFIG_SYS_REDUNDAND_ENVIRONMENT=y",
    "CONFIG_ENV_SIZE=0x4000",
    "CONFIG_ENV_OFFSET=0x400000",
    "CONFIG_ENV_OFFSET_REDUND=0x800000",
    "CONFIG_SYS_MMC_ENV_DEV=0",
    "CONFIG_MMC=y",
    "CONFIG_DM_MMC=y",
    "CONFIG_MMC_SDHCI=y",
    "CONFIG_MMC_PCI=y",
    "CONFIG_CMD_MMC=y",
    "CONFIG_USE_DEFAULT_ENV_FILE=y",
)


@pytest.fixture(scope="module")
def uboot_bin() -> Path:
    """The stock recipe's U-Boot, from the cache (built there the first time)."""
    cache = default_cache_dir()
    debs = cache / "debs"
    build = UBootBuild.from_folder(RECIPE)
    return build_uboot(
        build, AptRoot("arm64", debs / "apt-arm64"), debs / "pool-arm64", cache / "uboot"
    )


def test_the_build_has_what_mender_requires(uboot_bin: Path) -> None:
    config = set(config_of(uboot_bin).read_text().splitlines())
    missing = [line for line in REQUIRED if line not in config]
    assert not missing, f"{config_of(uboot_bin)} lacks {missing}"
    assert {"CONFIG_BOOTDELAY=0", "CONFIG_BOOTDELAY=-2"} & config
    # The default env is the recipe's, compiled in (NUL-separated, as U-Boot keeps it).
    blob = uboot_bin.read_bytes()
    for name, value in read_env_text(RECIPE / "uboot-env.txt").items():
        assert f"{name}={value}\0".encode() in blob, f"{name} is not in {uboot_bin}"


def test_a_setting_the_config_dropped_fails_the_build_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("CONFIG_MMC=y\n# CONFIG_MMC_PCI is not set\nCONFIG_ENV_SIZE=0x40000\n")
    check_config(config, ["CONFIG_MMC=y"])  # what took passes
    with pytest.raises(BuildError, match="CONFIG_MMC_PCI=y did not take"):
        check_config(config, ["CONFIG_MMC=y", "CONFIG_MMC_PCI=y"])
    with pytest.raises(BuildError, match=r"CONFIG_ENV_SIZE=0x4000 did not take \(the build has "):
        check_config(config, ["CONFIG_ENV_SIZE=0x4000"])
    with pytest.raises(BuildError, match="CONFIG_MMC is still enabled"):
        check_config(config, ["# CONFIG_MMC is not set"])


def test_env_text_lines_join_as_the_build_joins_them(tmp_path: Path) -> None:
    text = tmp_path / "env.txt"
    text.write_text("# comment\n\na=1\nb=run x; \\\n  run y\n# c=3\n")
    assert read_env_text(text) == {"a": "1", "b": "run x; run y"}


def sd_card(tmp_path: Path, **overrides: str) -> Path:
    """An SD card image holding only the env, both copies written by mkenvimage:
    the recipe's default env with `overrides`."""
    env = {**read_env_text(RECIPE / "uboot-env.txt"), **overrides}
    text = tmp_path / "env.txt"
    text.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    blob = tmp_path / "env.bin"
    subprocess.run(
        ["mkenvimage", "-r", "-s", hex(ENV_SIZE), "-o", blob, text], check=True, timeout=30
    )
    card = tmp_path / "sd.img"
    with card.open("wb") as f:
        f.truncate(SD_BYTES)
        for offset in ENV_OFFSETS:
            f.seek(offset)
            f.write(blob.read_bytes())
    return card


def env_on(card: Path) -> UBootEnv:
    data = card.read_bytes()
    copies = [data[offset : offset + ENV_SIZE] for offset in ENV_OFFSETS]
    return parse_env_copies(copies, str(card))


def boot_to_prompt(uboot_bin: Path, card: Path, log: Path) -> str:
    """Run U-Boot on the card until it stops at its prompt (nothing bootable
    on the card); the console text. QEMU is killed in every case."""
    argv = [
        "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a57", "-m", "512M",
        "-nographic", "-bios", str(uboot_bin), "-nic", "none",
        "-device", "sdhci-pci", "-device", "sd-card,drive=sd",
        "-drive", f"if=none,id=sd,file={card},format=raw",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + BOOT_DEADLINE_S
    try:
        while not out.rstrip().endswith(b"=>"):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no U-Boot prompt within {BOOT_DEADLINE_S:.0f} s; console: {log}")
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    pytest.fail(f"QEMU exited ({proc.poll()}) before the prompt; console: {log}")
                out += chunk
                log.write_bytes(out)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    return out.decode(errors="replace").replace("\r", "")


@pytest.mark.qemu
def test_uboot_own_bootlimit_switches_the_slot_in_the_env_on_the_card(
    uboot_bin: Path, tmp_path: Path
) -> None:
    card = sd_card(
        tmp_path, upgrade_available="1", bootcount="1", bootlimit="1", mender_saveenv_canary="1"
    )
    before = env_on(card)
    assert before.vars["mender_boot_part"] == "2"
    assert before.valid_copies == (0, 1)

    console = boot_to_prompt(uboot_bin, card, tmp_path / "console.log")

    assert "Loading Environment from MMC... OK" in console  # the env was read from the card
    assert "Warning: Bootlimit (1) exceeded. Using altbootcmd." in console
    after = env_on(card)
    assert after.valid_copies == (0, 1)
    assert (after.vars["mender_boot_part"], after.vars["mender_boot_part_hex"]) == ("3", "3")
    assert after.vars["upgrade_available"] == "0"
    assert after.vars["bootcount"] == "2"  # saved by bootcount_env before the switch
    # Two saves (the count, then mender_altbootcmd's), each to the other copy.
    assert console.count("Saving Environment to MMC... Writing to") == 2
    assert after.flags == 3


@pytest.mark.qemu
def test_a_trial_boot_that_returns_to_uboot_is_counted_reset_and_rolled_back(
    uboot_bin: Path, tmp_path: Path
) -> None:
    """No kernel on the card: bootcmd falls through to mender_try_to_recover,
    which resets while upgrade_available=1; the next boot exceeds bootlimit.
    The card carries no canary, so the first boot also writes it (as a fresh
    Mender device does)."""
    card = sd_card(tmp_path, upgrade_available="1", bootcount="0", bootlimit="1")
    assert "mender_saveenv_canary" not in env_on(card).vars

    console = boot_to_prompt(uboot_bin, card, tmp_path / "console.log")

    boots = console.split("U-Boot 2023.01")[1:]
    assert len(boots) == 2, console
    assert "Bootlimit" not in boots[0]
    assert boots[0].count("Saving Environment to MMC") == 2  # the count, then the canary
    assert "Warning: Bootlimit (1) exceeded. Using altbootcmd." in boots[1]
    after = env_on(card).vars
    assert (after["mender_boot_part"], after["upgrade_available"], after["bootcount"]) == (
        "3",
        "0",
        "2",
    )
    assert after["mender_saveenv_canary"] == "1"
