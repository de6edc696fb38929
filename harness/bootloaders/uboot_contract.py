"""Mender's U-Boot contract as a transition table, and what a boot makes of an env.

One table for every U-Boot that runs Mender's chain, wherever its env lives
(files on a FAT partition, raw offsets of an SD card): the storage modules
(`uboot_file`, `uboot_mender`) say where the copies are and how a board
without a valid copy behaves; this module says what a boot must do.

Sources (facts, restated): U-Boot 2023.01 `include/bootcount.h` +
`drivers/bootcount/bootcount_env.c` (the count is loaded, incremented and
saved only while `upgrade_available` is set; `bootcount` is set in RAM on
every boot; decimal; `bootlimit=0` means no limit; `bootcount > bootlimit`
runs `altbootcmd`), Mender's U-Boot integration (`mender_altbootcmd`:
switch `mender_boot_part`/`_hex`, clear `upgrade_available`, saveenv;
`mender_setup`: set `mender_saveenv_canary=1` and saveenv if missing),
U-Boot's redundant env (`env/common.c`, `env/mmc.c`: each save writes the
copy that was not loaded, with the loaded copy's flags + 1; with no valid
copy it boots its compiled-in default env).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from harness.bootloaders import mender_vars, uboot_env
from harness.bootloaders.protocol import BootEnv, Expected, Transition, decimal

if TYPE_CHECKING:
    from harness.targets.target import EnvLocation

CANARY = "mender_saveenv_canary"
VARIABLES = (
    "mender_boot_part",
    "mender_boot_part_hex",
    "upgrade_available",
    "bootcount",
    "bootlimit",
    CANARY,
)
# Mender's default env: what U-Boot boots when no env copy is valid. Its slot is
# the target's (`ab-harness.env.default_slot`, else the first slot): `env_default`.
MENDER_DEFAULT_ENV: Mapping[str, str] = {
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


@dataclass(frozen=True)
class MenderUBootContract:
    """The table plus what differs between two U-Boots that run it.

    `default_env`: the env booted with no valid copy; `runtime_vars`: the
    variables U-Boot (or Mender's chain) sets in RAM before a save, so a save
    writes the running board's value whatever the env said; `first_save_copy`:
    the copy the first save writes when no copy was valid (0 or 1, see
    `save_plan`); `saves_on_console`: the console names each save's copy and
    flags, so their order is checked against the plan; `pending_if_nonzero`:
    "pending" is U-Boot's `env_get_ulong("upgrade_available", 10, 0) != 0`
    (bootcount_env.c) rather than the string "1" a boot script compares.
    """

    default_env: Mapping[str, str]
    runtime_vars: frozenset[str]
    first_save_copy: int = 0
    saves_on_console: bool = True
    pending_if_nonzero: bool = False

    def env_default(self, slots: Mapping[str, int], default_slot: str | None) -> dict[str, str]:
        """The compiled-in default env, booting the target's default slot (the
        first slot when the target names none)."""
        part = slots[default_slot] if default_slot else next(iter(slots.values()))
        env = dict(self.default_env)
        env["mender_boot_part"], env["mender_boot_part_hex"] = str(part), f"{part:x}"
        return env

    def predict(
        self,
        before: BootEnv,
        slots: Mapping[str, int],
        copies: Sequence[str],
        default_slot: str | None = None,
    ) -> tuple[Expected, dict[str, str]]:
        """What a boot makes of the env `before`; also the env it starts from."""
        valid = before.detail.get("copy") != "none"
        env = dict(before.vars) if valid else self.env_default(slots, default_slot)
        raw_pending = env.get("upgrade_available")
        pending = decimal(raw_pending) != 0 if self.pending_if_nonzero else raw_pending == "1"
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
        plan = self.save_plan(before, saves, copies)
        copy_after = (plan[-1][0], str(plan[-1][1])) if plan else None
        expected = Expected(
            row,
            slot,
            count,
            after.get("upgrade_available") == "1",
            after,
            plan if len(copies) == 2 and self.saves_on_console else None,
            copy_after,
            # Every variable is kept, except those the board sets itself.
            frozenset(set(env) | set(after)) - self.runtime_vars,
            steps=tuple(steps),
        )
        return expected, env

    def slot_started(
        self, env: BootEnv, slots: Mapping[str, int], default_slot: str | None = None
    ) -> str | None:
        """The slot `mender_boot_part` names (the default env's with no valid copy)."""
        none = env.detail.get("copy") == "none"
        named = self.env_default(slots, default_slot) if none else env.vars
        part = decimal(named.get("mender_boot_part"), -1)
        return next((name for name, n in slots.items() if n == part), None)

    @staticmethod
    def saves_between(before: BootEnv, after: BootEnv, copies: Sequence[str]) -> int | None:
        """How many saves the redundant copies' flags show (`uboot_env`)."""
        return uboot_env.saves_between(before, after, copies)

    def save_plan(
        self, before: BootEnv, count: int, copies: Sequence[str]
    ) -> tuple[tuple[str, int], ...]:
        """Each save writes the copy the last one did not, with the flags byte + 1;
        with no valid copy the first goes to copy `first_save_copy` (the reference
        boot script writes the first file, 0)."""
        return uboot_env.save_plan(before, count, copies, self.first_save_copy)


def env_problems(env: Mapping[str, str]) -> list[str]:
    """A saved env whose mender_boot_part_hex does not follow mender_boot_part."""
    part, part_hex = env.get("mender_boot_part"), env.get("mender_boot_part_hex")
    if part is not None and part.isdigit() and part_hex != f"{int(part):x}":
        return [f"mender_boot_part_hex={part_hex} does not follow mender_boot_part={part}"]
    return []


def bootcount_after_rollback(bootlimit: int) -> int:
    """altbootcmd leaves the count it rolled back at, as Mender's does."""
    return bootlimit + 1


class MenderUBootRules:
    """The contract's half of a U-Boot `Bootloader` running Mender's chain: a
    storage module (`uboot_file`, `uboot_mender`) says where its copies are
    (`location`) and which U-Boot it is (`contract`); the rules are these."""

    contract: ClassVar[MenderUBootContract]
    location: EnvLocation

    @property
    def capabilities(self) -> frozenset[str]:
        # bootlimit is an env variable the boot reads; with no valid copy U-Boot
        # boots its default env and saves it (the canary).
        return uboot_env.capabilities(self.location, "bootlimit-n", "env-default-saved")

    @property
    def transitions(self) -> tuple[Transition, ...]:
        return TABLE

    @property
    def variables(self) -> tuple[str, ...]:
        return VARIABLES

    def mark_good(self, env: Mapping[str, str], slot: str) -> dict[str, str]:
        return mender_vars.commit(env)

    def rollback(
        self, env: Mapping[str, str], slot: str, slots: Mapping[str, int]
    ) -> dict[str, str]:
        return mender_vars.rollback(env, slot, slots, with_hex=True)

    def settled(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        return mender_vars.settled(env)

    def bootcount_after_rollback(self, bootlimit: int) -> int:
        return bootcount_after_rollback(bootlimit)

    def env_problems(self, env: Mapping[str, str]) -> list[str]:
        return env_problems(env)

    def predict(self, before: BootEnv, slots: Mapping[str, int]) -> tuple[Expected, dict[str, str]]:
        """What the contract makes of the env `before`; also the env it starts from."""
        loc = self.location
        return self.contract.predict(before, slots, loc.copy_names, loc.default_slot)

    def slot_started(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        return self.contract.slot_started(env, slots, self.location.default_slot)

    def saves_between(self, before: BootEnv, after: BootEnv) -> int | None:
        return self.contract.saves_between(before, after, self.location.copy_names)
