"""Architecture profiles: every shipped one loads, and a bad one is one clear line."""

import sys
from pathlib import Path

import pytest

QEMU_IMAGES = Path(__file__).resolve().parent.parent / "qemu-images"
sys.path.insert(0, str(QEMU_IMAGES))

from imagekit.kernel import check_config, fragment_lines  # noqa: E402
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
    if profile.kernel_build is None:
        assert profile.initramfs_modules, "a Debian kernel needs at least virtio_blk as a module"
    else:
        assert not profile.initramfs_modules, "a kernel built here has its drivers built in"
        assert profile.kernel_build.config.is_file()


def test_the_arm64_kernel_is_built_from_debian_source_with_every_driver_the_image_uses() -> None:
    profile = load_profile(QEMU_IMAGES / "arm64-uboot" / "profile.toml")
    assert profile.kernel_build is not None and profile.kernel_package is None
    settings = set(fragment_lines(profile.kernel_build.config))
    for needed in (
        "VIRTIO_BLK",
        "EXT4_FS",
        "VFAT_FS",
        "SERIAL_AMBA_PL011_CONSOLE",
        "HOTPLUG_PCI_PCIE",
        "I6300ESB_WDT",
        "VIRTIO_NET",
        "USB_STORAGE",
    ):
        assert f"CONFIG_{needed}=y" in settings
    assert "# CONFIG_MODULES is not set" in settings


def test_a_setting_olddefconfig_dropped_stops_the_build(tmp_path: Path) -> None:
    fragment = ["CONFIG_EXT4_FS=y", "CONFIG_I6300ESB_WDT=y", "# CONFIG_MODULES is not set"]
    config = tmp_path / ".config"
    config.write_text("CONFIG_EXT4_FS=y\n# CONFIG_I6300ESB_WDT is not set\n")
    with pytest.raises(BuildError, match="CONFIG_I6300ESB_WDT=y did not take"):
        check_config(config, fragment)
    config.write_text("CONFIG_EXT4_FS=y\nCONFIG_I6300ESB_WDT=y\nCONFIG_MODULES=y\n")
    with pytest.raises(BuildError, match="CONFIG_MODULES is still enabled"):
        check_config(config, fragment)
    config.write_text("CONFIG_EXT4_FS=y\nCONFIG_I6300ESB_WDT=y\n")
    check_config(config, fragment)


def test_a_profile_needs_exactly_one_kernel_source(tmp_path: Path) -> None:
    text = (QEMU_IMAGES / "arm64-uboot" / "profile.toml").read_text()
    bad = tmp_path / "profile.toml"
    bad.write_text('kernel_package = "linux-image-cloud-arm64"\n' + text)
    with pytest.raises(
        BuildError, match="exactly one of 'kernel_package' and a \\[kernel_build\\]"
    ):
        load_profile(bad)


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
