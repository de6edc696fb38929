"""Mender's GRUB env read from the host: two grubenv copies, each with a lock
that marks an edit in progress. Blocks are written by the real grub-editenv
(Debian grub-common), as the guest's ab-env writes them."""

import subprocess
from pathlib import Path

from harness.bootloaders import BootEnv, GrubMenderEnv, bootloader_for
from harness.bootloaders.grub_mender import FILES, read_state
from harness.targets.target import EnvLocation
from tests.fatdisk import build_fat_disk, tool

SLOTS = {"A": 2, "B": 3}
LOCATION = EnvLocation(1, FILES, 1024)
COMMITTED_B = {"bootcount": "1", "mender_boot_part": "3", "upgrade_available": "0"}
TRYING_B = {"bootcount": "0", "mender_boot_part": "3", "upgrade_available": "1"}


def editenv(tmp_path: Path, name: str, variables: dict[str, str]) -> bytes:
    """A grubenv block as `grub-editenv FILE create` + `set` writes it."""
    path = tmp_path / name.replace("/", "_")
    path.unlink(missing_ok=True)
    subprocess.run([tool("grub-editenv"), path, "create"], check=True)
    if variables:
        pairs = [f"{k}={v}" for k, v in variables.items()]
        subprocess.run([tool("grub-editenv"), path, "set", *pairs], check=True)
    return path.read_bytes()


def blobs(
    tmp_path: Path,
    env1: dict[str, str],
    env2: dict[str, str],
    lock1: bytes | str = "0",
    lock2: bytes | str = "0",
) -> dict[str, bytes]:
    def lock(value: bytes | str, name: str) -> bytes:
        return value if isinstance(value, bytes) else editenv(tmp_path, name, {"editing": value})

    return {
        FILES[0]: editenv(tmp_path, FILES[0], env1),
        FILES[1]: lock(lock1, FILES[1]),
        FILES[2]: editenv(tmp_path, FILES[2], env2),
        FILES[3]: lock(lock2, FILES[3]),
    }


def test_both_locks_clean_grub_reads_copy_1(tmp_path: Path) -> None:
    state = read_state(blobs(tmp_path, COMMITTED_B, TRYING_B))

    assert (state.used, state.repairs, state.valid) == (1, None, True)
    assert dict(state.vars) == COMMITTED_B


def test_copy_1_torn_mid_edit_copy_2_is_used(tmp_path: Path) -> None:
    # A power cut while copy 1 was written: its lock still says editing=1 and
    # its env is half old, half new. GRUB must not trust a byte of it.
    half_written = {"bootcount": "0", "mender_boot_part": "2"}
    state = read_state(blobs(tmp_path, half_written, COMMITTED_B, lock1="1"))

    assert (state.used, state.repairs) == (2, 1)
    assert dict(state.vars) == COMMITTED_B
    assert "copy 1's lock is not editing=0" in state.why


def test_copy_2_torn_copy_1_is_used_and_copy_2_repaired(tmp_path: Path) -> None:
    state = read_state(blobs(tmp_path, COMMITTED_B, {"bootcount": "0"}, lock2="1"))

    assert (state.used, state.repairs) == (1, 2)
    assert dict(state.vars) == COMMITTED_B


def test_a_torn_lock_itself_counts_as_torn(tmp_path: Path) -> None:
    # grub-editenv truncates and rewrites: a cut in the lock's own write
    # leaves an empty (or headerless) file, with no editing=0 in it.
    state = read_state(blobs(tmp_path, {"bootcount": "0"}, COMMITTED_B, lock1=b""))

    assert state.used == 2
    assert state.copies[0].editing is None


def test_value_2_is_rejected(tmp_path: Path) -> None:
    state = read_state(blobs(tmp_path, {**COMMITTED_B, "bootcount": "2"}, COMMITTED_B))

    assert not state.valid
    assert state.problems == ("bootcount=2 is not 0 or 1",)


def test_a_rejected_env_boots_a_unless_it_says_b(tmp_path: Path) -> None:
    grub = GrubMenderEnv(LOCATION)
    for part, slot in (("3", "B"), ("7", "A")):
        files = blobs(tmp_path, {"bootcount": "2", "mender_boot_part": part,
                                 "upgrade_available": "0"}, COMMITTED_B)  # fmt: skip
        disk = build_fat_disk(tmp_path, files, label="gpt")
        env = grub.env_from_image(disk)
        expected, _ = grub.predict(env, SLOTS)

        assert "bootcount=2 is not 0 or 1" in env.detail["invalid"]
        assert expected.slot == slot


def test_the_contract_rolls_back_on_the_second_boot_of_an_uncommitted_slot(
    tmp_path: Path,
) -> None:
    grub = bootloader_for("grub-mender", LOCATION)
    disk = build_fat_disk(tmp_path, blobs(tmp_path, TRYING_B, TRYING_B), label="gpt")
    first, _ = grub.predict(grub.env_from_image(disk), SLOTS)
    # The next boot starts from what the first one saved (both locks clean).
    second, _ = grub.predict(BootEnv(first.env_after, "t", {"lock1": "0", "lock2": "0"}), SLOTS)

    assert (first.slot, first.bootcount, first.upgrade_available) == ("B", 1, True)
    assert first.saves == ((FILES[2], 0), (FILES[0], 0))  # copy 2 first, then copy 1
    assert (second.slot, second.bootcount, second.upgrade_available) == ("A", 0, False)
    assert "bootlimit-n" not in grub.capabilities


def test_corrupting_the_newest_copy_turns_grub_to_the_other(tmp_path: Path) -> None:
    grub = GrubMenderEnv(LOCATION)
    disk = build_fat_disk(tmp_path, blobs(tmp_path, COMMITTED_B, COMMITTED_B), label="gpt")

    proof = grub.corrupt_env_copy(disk, "newest")

    assert proof["corrupted"] == [FILES[0]]
    assert proof["valid_after"] == [FILES[2]]
    env = grub.env_from_image(disk)
    assert (env.detail["copy"], env.detail["lock1"], dict(env.vars)) == (
        FILES[2],
        "1",
        COMMITTED_B,
    )


def test_corrupting_all_copies_leaves_grub_nothing_valid(tmp_path: Path) -> None:
    grub = GrubMenderEnv(LOCATION)
    disk = build_fat_disk(tmp_path, blobs(tmp_path, COMMITTED_B, COMMITTED_B), label="gpt")

    grub.corrupt_env_copy(disk, "all")

    assert "invalid" in grub.env_from_image(disk).detail


def test_a_restore_into_an_emptied_copy_fails_but_still_clears_its_lock(tmp_path: Path) -> None:
    # The crash state of the x86 sweep (k=584, ordered): the commit's
    # grub-editenv had truncated copy 1's env (0 bytes) after locking it.
    # GRUB's save_env rewrites only an existing block, so the restore of copy
    # 1 fails ("invalid environment block"), yet Mender's script then writes
    # lock 1 editing=0: this boot runs on copy 2's values, and the disk is
    # left with two clean locks and an empty copy 1.
    grub = GrubMenderEnv(LOCATION)
    files = blobs(tmp_path, {}, COMMITTED_B, lock1="1")
    files[FILES[0]] = b""
    env = grub.env_from_image(build_fat_disk(tmp_path, files, label="gpt"))

    expected, start = grub.predict(env, SLOTS)

    assert (expected.slot, expected.bootcount, expected.upgrade_available) == ("B", 1, False)
    assert expected.saves == ()  # the restore's env save failed: GRUB reports none
    assert expected.changes_disk  # but lock 1 was written
    assert expected.copy_after == (FILES[0], None)
    assert dict(expected.env_after) == {}  # copy 1, now trusted, holds no block
    assert start == COMMITTED_B
    # The next boot reads the empty copy 1: GRUB rejects it and boots A.
    after = BootEnv(
        {}, "t", {"copy": FILES[0], "lock1": "0", "lock2": "0", "no_block": FILES[0],
                  "env1": "", "env2": env.detail["env2"]},
    )  # fmt: skip
    following, _ = grub.predict(after, SLOTS)
    assert (following.slot, following.saves) == ("A", ())


def test_a_torn_lock_without_a_block_stays_torn_through_a_save(tmp_path: Path) -> None:
    # Lock 1 truncated by grub-editenv: GRUB cannot write it, neither in the
    # restore nor in the trial boot's save, so copy 2 stays the one read.
    grub = GrubMenderEnv(LOCATION)
    files = blobs(tmp_path, TRYING_B, TRYING_B, lock1=b"")
    env = grub.env_from_image(build_fat_disk(tmp_path, files, label="gpt"))

    expected, _ = grub.predict(env, SLOTS)

    assert (expected.slot, expected.bootcount) == ("B", 1)
    assert expected.saves == ((FILES[0], 0), (FILES[2], 0), (FILES[0], 0))
    assert expected.copy_after == (FILES[2], None)
    assert expected.env_after["bootcount"] == "1"
