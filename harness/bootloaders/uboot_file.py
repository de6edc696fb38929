"""U-Boot with its env in one or two (redundant) files on a FAT partition,
and Mender's U-Boot contract as a transition table.

The table says what U-Boot with CONFIG_BOOTCOUNT_LIMIT + CONFIG_BOOTCOUNT_ENV
and Mender's `mender_altbootcmd`/`mender_setup` do from any env. Sources
(facts, restated): U-Boot `common/bootcount.c` + `drivers/bootcount/
bootcount_env.c` (the count is loaded and stored only while
`upgrade_available` is set; decimal; `bootlimit=0` means no limit;
`bootcount > bootlimit` runs `altbootcmd`), Mender's U-Boot integration
(`mender_altbootcmd`: switch `mender_boot_part`/`_hex`, clear
`upgrade_available`, saveenv; `mender_setup`: set `mender_saveenv_canary=1`
and saveenv if missing), U-Boot's redundant env (each save writes the other
copy with the flags byte + 1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.bootloaders.protocol import (
    LINE_START,
    BootEnv,
    BootMarkers,
    Expected,
    Transition,
    decimal,
)
from harness.diskimage import read_partition_files, write_partition_file
from harness.envformat import EnvCorrupt, parse_env, parse_env_copies
from harness.errors import DeviceError, HarnessConfigError
from harness.shell import ShellLike
from harness.target import EnvLocation

CANARY = "mender_saveenv_canary"
# Variables U-Boot sets itself at every start (after loading the env), so a
# save writes the running board's value, whatever the env said: an env taken
# from another board (a field bundle) comes back with this board's value.
RUNTIME_VARS = ("fdtcontroladdr",)
# Mender's default env: what U-Boot uses when no env copy is valid.
DEFAULT_ENV = {
    "bootlimit": "1",
    "bootcount": "0",
    "upgrade_available": "0",
    "mender_boot_part": "2",
    "mender_boot_part_hex": "2",
}

TABLE: tuple[Transition, ...] = (
    Transition("nothing pending: boot the same slot", False, False, False, False, False, 0),
    Transition(
        "update pending: count the boot, try the new slot", True, False, False, True, False, 1
    ),
    Transition(
        "bootlimit exceeded: altbootcmd switches back and clears the flag",
        True,
        True,
        True,
        True,
        True,
        2,
    ),
)


MARKERS = BootMarkers(
    banner=re.compile(LINE_START + rb"U-Boot \d{4}\.\d{2}"),
    decision=re.compile(
        LINE_START + rb"ab-boot: slot=(?P<slot>\w+) part=\S+ bootcount=(?P<bootcount>\w*) "
        rb"upgrade_available=(?P<upgrade_available>\w*)(?=\s)"
    ),
    save=re.compile(
        LINE_START + rb"ab-boot: saveenv \((?P<why>\w+)\) wrote (?P<file>\S+) "
        rb"flags=0x(?P<flags>[0-9a-fA-F]+)(?=[\r\n])"
    ),
    no_kernel=re.compile(LINE_START + rb"ab-boot: kernel of slot (?P<slot>\w+) did not boot"),
    fatal=re.compile(LINE_START + rb"ab-(?:boot|initramfs): FATAL (?P<why>[^\r\n]*)"),
    # U-Boot's own line (boot_jump_linux's announce), printed by booti/bootz/bootm
    # after every save of the boot: any U-Boot prints it, the reference script or not.
    handoff=re.compile(LINE_START + rb"Starting kernel \.\.\."),
)


@dataclass(frozen=True)
class UBootFileEnv:
    """U-Boot with its env in one or two (redundant) files on a FAT partition."""

    location: EnvLocation
    name: str = "uboot"
    markers: BootMarkers = MARKERS

    @property
    def capabilities(self) -> frozenset[str]:
        # bootlimit is a plain env variable the boot script compares against; with
        # no valid copy U-Boot boots its default env and saves it (the canary).
        found = {"bootlimit-n", "env-default-saved"}
        if len(self.location.files) == 2:
            found.add("env-redundant")
        return frozenset(found)

    @property
    def transitions(self) -> tuple[Transition, ...]:
        return TABLE

    def bootcount_after_rollback(self, bootlimit: int) -> int:
        # altbootcmd leaves the count it rolled back at, as Mender's does.
        return bootlimit + 1

    def env_problems(self, env: Mapping[str, str]) -> list[str]:
        part, part_hex = env.get("mender_boot_part"), env.get("mender_boot_part_hex")
        if part is not None and part.isdigit() and part_hex != f"{int(part):x}":
            return [f"mender_boot_part_hex={part_hex} does not follow mender_boot_part={part}"]
        return []

    def predict(self, before: BootEnv, slots: Mapping[str, int]) -> tuple[Expected, dict[str, str]]:
        """What the contract makes of the env `before`; also the env it starts from."""
        valid = before.detail.get("copy") != "none"
        env = dict(before.vars) if valid else dict(DEFAULT_ENV)
        pending = env.get("upgrade_available") == "1"
        count = (decimal(env.get("bootcount")) if pending else 0) + 1
        limit = decimal(env.get("bootlimit"))
        exceeded = pending and limit != 0 and count > limit
        row = next(t for t in TABLE if t.pending == pending and t.rolls_back == exceeded)
        # U-Boot's env in RAM, and what each save writes of it, in order:
        # bootcount_store, mender_altbootcmd's saveenv, mender_setup's canary.
        ram = dict(env)
        ram["bootcount"] = str(count)  # the RAM value goes out with any save
        steps: list[dict[str, str]] = []
        if row.stores_bootcount:
            steps.append(dict(ram))
        if row.switches_slot:
            part = next(n for n in slots.values() if str(n) != env.get("mender_boot_part"))
            ram["mender_boot_part"] = str(part)
            ram["mender_boot_part_hex"] = f"{part:x}"
        if row.clears_pending:
            ram["upgrade_available"] = "0"
        if row.switches_slot or row.clears_pending:
            steps.append(dict(ram))
        if env.get(CANARY) != "1":
            ram[CANARY] = "1"
            steps.append(dict(ram))
        saves = len(steps)
        after = ram if steps else dict(env)
        part = decimal(after.get("mender_boot_part"))
        slot = next((name for name, n in slots.items() if n == part), "?")
        plan = _save_plan(before, saves, self.location.files)
        copy_after = None
        if plan:
            copy_after = (plan[-1][0], str(plan[-1][1]))
        expected = Expected(
            row,
            slot,
            count,
            after.get("upgrade_available") == "1",
            after,
            plan if len(self.location.files) == 2 else None,
            copy_after,
            # Every variable is kept, except those the board sets itself.
            frozenset(set(env) | set(after)) - frozenset(RUNTIME_VARS),
            steps=tuple(steps),
        )
        return expected, env

    def slot_started(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        """The slot `mender_boot_part` names (Mender's default env's with no valid copy)."""
        named = DEFAULT_ENV if env.detail.get("copy") == "none" else env.vars
        part = decimal(named.get("mender_boot_part"), -1)
        return next((name for name, n in slots.items() if n == part), None)

    def saves_between(self, before: BootEnv, after: BootEnv) -> int | None:
        """Each save writes the other copy with the flags byte + 1, so the
        flags of the copy read afterwards count the saves (a save torn by a
        power cut leaves its copy invalid: it does not count)."""
        if len(self.location.files) != 2:
            return None
        flags_before, flags_after = before.detail.get("flags"), after.detail.get("flags")
        none_before = before.detail.get("copy") == "none"
        if after.detail.get("copy") == "none":
            return 0 if none_before else None
        if flags_after is None or (flags_before is None and not none_before):
            return None
        # With no valid copy before, the first save writes flags 1.
        return (int(flags_after) - (0 if none_before else int(flags_before or 0))) % 256

    def env_from_image(self, disk: Path) -> BootEnv:
        """Read the env straight out of the disk image, as the bootloader would."""
        blobs = read_partition_files(disk, self.location.partition, self.location.files)
        where = f"{disk.name} p{self.location.partition}:{'+'.join(self.location.files)}"
        return self.env_from_files(blobs, f"host:{where}")

    def env_from_files(self, blobs: Sequence[bytes], source: str) -> BootEnv:
        """The env from the raw bytes of its files (in `location.files` order),
        wherever they were read: the host's disk image, or a board's shell."""
        where = source.split(":", 1)[-1]
        # One file is U-Boot's plain layout (crc | data); two are the redundant
        # copies (crc | flags | data), as CONFIG_SYS_REDUNDAND_ENVIRONMENT stores them.
        # Only `size` bytes count, as U-Boot reads CONFIG_ENV_SIZE of each file.
        size = self.location.size
        if len(blobs) == 1:
            parsed = parse_env(blobs[0][:size], size=size, source=where)
        else:
            parsed = parse_env_copies([b[:size] for b in blobs], source=where, size=size)
        used = self.location.files[parsed.copy_index]
        detail = {"copy": used}
        if parsed.flags is not None:
            detail["flags"] = str(parsed.flags)
        return BootEnv(parsed.vars, source, detail)

    def corrupt_env_copy(self, disk: Path, which: str) -> dict[str, object]:
        """Flip a byte in the data area of the chosen copies (their CRC no longer
        matches), then read the env back to prove U-Boot will reject them."""
        files = self.location.files
        if which not in ("newest", "oldest", "all"):
            raise HarnessConfigError(
                f"no env copy '{which}'", "corrupt the 'newest', 'oldest' or 'all' copies"
            )
        newest = self.env_from_image(disk).detail.get("copy", files[0])
        if which == "all" or len(files) == 1:
            victims = list(files)
        elif which == "newest":
            victims = [newest]
        else:
            victims = [f for f in files if f != newest]
        blobs = dict(
            zip(files, read_partition_files(disk, self.location.partition, files), strict=True)
        )
        for name in victims:
            blob = bytearray(blobs[name])
            blob[16] ^= 0xFF  # inside the data area of either layout
            write_partition_file(disk, self.location.partition, name, bytes(blob))
        try:
            after = self.env_from_image(disk)
            still_valid = [after.detail.get("copy")]
        except EnvCorrupt:
            still_valid = []
        if any(v in still_valid for v in victims):
            raise DeviceError(f"corrupting {victims} did not make them invalid", "harness bug")
        return {"corrupted": victims, "newest_before": newest, "valid_after": still_valid}

    def env_from_device(self, shell: ShellLike) -> BootEnv:
        """Read the env on the device with libubootenv's fw_printenv."""
        code, out = shell.exec("fw_printenv")
        if code != 0:
            lines = out.strip().splitlines()
            last = lines[-1][-200:] if lines else "no output"
            raise DeviceError(
                f"fw_printenv failed on the device (exit {code}): {last}",
                "check /etc/fw_env.config and that the env copies are intact",
            )
        pairs = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return BootEnv(pairs, "device:fw_printenv")


def _save_plan(before: BootEnv, count: int, files: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """Each save writes the copy the last one did not, with the flags byte + 1."""
    if len(files) != 2:
        return ()
    used = before.detail.get("copy")
    flags = int(before.detail.get("flags", "0"))
    if used in files:
        target, next_flags = 1 - files.index(used), flags + 1
    else:  # no valid copy: the first save goes to the first copy with flags 1
        target, next_flags = 0, 1
    plan = []
    for _ in range(count):
        plan.append((files[target], next_flags % 256))
        target, next_flags = 1 - target, next_flags + 1
    return tuple(plan)
