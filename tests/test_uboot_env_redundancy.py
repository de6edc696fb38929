"""boot.scr's redundant env, proven on the real U-Boot: the newer valid copy
wins, a copy with a bad CRC is skipped, and the flags counter wraps."""

from pathlib import Path

import pytest

from harness.envformat import encode_env
from harness.images.diskimage import write_partition_file

pytestmark = pytest.mark.qemu

SLOT_A = {
    "mender_boot_part": "2",
    "mender_boot_part_hex": "2",
    "upgrade_available": "0",
    "bootcount": "0",
    "bootlimit": "1",
}
SLOT_B = {**SLOT_A, "mender_boot_part": "3", "mender_boot_part_hex": "3"}


def write_copies(
    disk: Path,
    spec,
    first: tuple[dict, int],
    second: tuple[dict, int],
    corrupt: tuple[int, ...] = (),
) -> None:
    for index, (name, (env_vars, flags)) in enumerate(
        zip(spec.env.files, (first, second), strict=True)
    ):
        blob = bytearray(encode_env(env_vars, spec.env.size, redundant_flags=flags))
        if index in corrupt:
            blob[10] ^= 0xFF  # inside the data area, so the stored CRC no longer matches
        write_partition_file(disk, spec.env.partition, name, bytes(blob))


@pytest.mark.parametrize(
    ("first", "second", "corrupt", "expected_slot"),
    [
        pytest.param((SLOT_A, 1), (SLOT_B, 2), (), "B", id="newer-copy-wins"),
        pytest.param((SLOT_A, 1), (SLOT_B, 2), (1,), "A", id="bad-crc-copy-skipped"),
        pytest.param((SLOT_A, 255), (SLOT_B, 0), (), "B", id="flags-wrap-255-to-0"),
        pytest.param((SLOT_B, 7), (SLOT_A, 6), (), "B", id="first-copy-newer"),
    ],
)
def test_boot_script_picks_the_right_env_copy(ab_live, first, second, corrupt, expected_slot):
    write_copies(ab_live.disk, ab_live.spec, first, second, corrupt)

    ab_live.strategy.transition("shell")

    boot = ab_live.strategy.last_boots[-1]
    assert (boot.bootloader_slot, boot.running_slot) == (expected_slot, expected_slot)
    serial = ab_live.recorder.tail(200)
    for index in corrupt:
        assert f"env copy {ab_live.spec.env.files[index]} has a bad CRC, ignored" in serial


def test_no_valid_copy_falls_back_to_slot_a_and_repairs(ab_live, observe):
    write_copies(ab_live.disk, ab_live.spec, (SLOT_B, 1), (SLOT_B, 2), corrupt=(0, 1))

    ab_live.strategy.transition("shell")

    assert ab_live.strategy.last_boots[-1].running_slot == "A"
    assert "no valid env copy, using the default env" in ab_live.recorder.tail(200)
    # boot.scr saved the defaults, so Linux and the host can read the env again.
    assert observe.env_host("repaired").boot_part == 2
    assert observe.env_device("repaired").boot_part == 2
