"""Architecture profiles: every shipped one loads, and a bad one is one clear line."""

import sys
from pathlib import Path

import pytest

QEMU_IMAGES = Path(__file__).resolve().parent.parent / "qemu-images"
sys.path.insert(0, str(QEMU_IMAGES))

from imagekit.profile import load_profile  # noqa: E402
from imagekit.run import BuildError  # noqa: E402

PROFILES = sorted(QEMU_IMAGES.glob("*/profile.toml"))


def test_the_arm64_and_arm_profiles_are_shipped() -> None:
    assert {p.parent.name for p in PROFILES} >= {"arm64-uboot", "arm-uboot"}


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.parent.name)
def test_each_profile_loads_and_its_uboot_is_a_cache_key_input(path: Path) -> None:
    profile = load_profile(path)

    # The image cache is keyed by the host files listed in host-inputs: a
    # U-Boot the profile copies in but the list misses would go stale unseen.
    listed = (path.parent / "host-inputs").read_text().split()
    assert str(profile.uboot) in listed
    assert profile.guest_libs[0] == f"lib/{profile.multiarch}/{profile.loader}"
    assert profile.initramfs_modules, "a Debian kernel needs at least virtio_blk as a module"


def test_arm_profile_boots_a_zimage_on_a_cortex_a15_without_v2_hang() -> None:
    profile = load_profile(QEMU_IMAGES / "arm-uboot" / "profile.toml")
    assert (profile.arch, profile.kernel, profile.boot_command) == ("armhf", "zImage", "bootz")
    assert (profile.qemu.system, profile.qemu.cpu) == ("qemu-system-arm", "cortex-a15")
    assert profile.watchdog is None  # no armhf kernel drives QEMU's i6300esb


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ('arch = "arm64"', "'arch' is missing"),
        ('boot_command = "booti"', "'boot_command' is missing"),
        ('kernel = "Image"', "'kernel' must be a str"),
        ("[qemu]", "unknown key(s) sysstem"),
    ],
)
def test_a_bad_profile_names_its_file_and_key(tmp_path: Path, edit: str, message: str) -> None:
    text = (QEMU_IMAGES / "arm64-uboot" / "profile.toml").read_text()
    replacement = {
        'kernel = "Image"': "kernel = 3",
        "[qemu]": '[qemu]\nsysstem = "x"',
    }.get(edit, "")
    bad = tmp_path / "profile.toml"
    bad.write_text(text.replace(edit, replacement, 1))

    with pytest.raises(BuildError) as err:
        load_profile(bad)
    assert str(bad) in str(err.value)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
