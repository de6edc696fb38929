"""SWUpdate's dual-copy U-Boot contract: `ustate`, `upgrade_available`,
`bootcount`/`bootlimit` and the slot variable its `bootenv` sets; env at raw offsets.

Facts it rests on, restated (SWUpdate's documentation: doc/source/
swupdate-best-practise.rst "Update Concept", sw-description.rst "Update
Transaction and Status Marker", "bootenv" and "Software collections",
swupdate.rst "Changes in boot-loader code"; U-Boot's doc/api/bootcount.rst
and drivers/bootcount/bootcount_env.c):
- the .swu's `bootenv` section sets the variables that pick the slot (the
  documentation's example: `bootpart`, "0:2" or "0:1" per copy) and, for
  U-Boot's counter, `upgrade_available=1`; after a successful install
  SWUpdate sets `ustate=1` (INSTALLED: the new software is under test);
  `recovery_status` marks an install in progress or failed;
- U-Boot counts boots only while `upgrade_available` is non-zero (decimal):
  `bootcount` + 1 is saved on each such boot; past `bootlimit` (0 or unset:
  no limit) it runs `altbootcmd`, the fallback, which toggles the slot
  variable, sets `ustate=3` (FAILED) and clears `upgrade_available`; the
  env is redundant (`CONFIG_ENV_OFFSET_REDUND`), so each save writes the
  other copy;
- user space commits by resetting `ustate` to 0 (and `bootcount`,
  `upgrade_available`, so U-Boot stops counting).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from harness.bootloaders import uboot_env
from harness.bootloaders.protocol import BootEnv, BootMarkers, Expected, Transition, decimal
from harness.bootloaders.uboot_contract import TABLE as BOOTCOUNT_TABLE
from harness.bootloaders.uboot_env import MARKERS, OffsetsStorage, require_offsets
from harness.targets.target import EnvLocation

# SWUpdate's update states (its include/state.h): what `ustate` may hold.
USTATES = {
    "0": "OK",
    "1": "INSTALLED",
    "2": "TESTING",
    "3": "FAILED",
    "4": "NOT_AVAILABLE",
    "5": "ERROR",
    "6": "WAIT",
    "7": "IN_PROGRESS",
}
INSTALLED, FAILED = "1", "3"

# U-Boot's bootcount rows, as Mender's U-Boot runs them; the fallback's own
# writes (the slot variable, ustate=3) are in `predict`.
TABLE = BOOTCOUNT_TABLE


@dataclass(frozen=True)
class UBootSwupdateEnv(OffsetsStorage):
    """U-Boot's bootcount and SWUpdate's fallback script, env at raw disk offsets.

    `slot_var` is the variable the .swu's `bootenv` sets to pick the slot; its
    value is the slot's partition, alone or after `<device>:`."""

    location: EnvLocation
    name: str = "uboot-swupdate"
    markers: BootMarkers = MARKERS
    slot_var: str = "bootpart"

    def __post_init__(self) -> None:
        require_offsets(self.location, self.name)

    @property
    def capabilities(self) -> frozenset[str]:
        return uboot_env.capabilities(self.location, "bootlimit-n")

    @property
    def transitions(self) -> tuple[Transition, ...]:
        return TABLE

    @property
    def variables(self) -> tuple[str, ...]:
        return (self.slot_var, "upgrade_available", "bootcount", "bootlimit", "ustate")

    def part_of(self, env: Mapping[str, str]) -> int | None:
        """The partition the slot variable names ("2" or "0:2"); None if none."""
        found = re.fullmatch(r"(?:\w+:)?(\d+)", (env.get(self.slot_var) or "").strip())
        return int(found.group(1)) if found else None

    def toggled(self, env: Mapping[str, str], slots: Mapping[str, int]) -> str:
        """The slot variable naming the other slot, keeping its `<device>:` prefix."""
        raw = env.get(self.slot_var) or ""
        prefix = raw.rsplit(":", 1)[0] + ":" if ":" in raw else ""
        other = next(n for n in slots.values() if n != self.part_of(env))
        return f"{prefix}{other}"

    def predict(self, before: BootEnv, slots: Mapping[str, int]) -> tuple[Expected, dict[str, str]]:
        """U-Boot's bootcount and altbootcmd on `before` (with no valid copy,
        its default env: none of these variables, nothing pending)."""
        start = dict(before.vars) if before.detail.get("copy") != "none" else {}
        pending = decimal(start.get("upgrade_available")) != 0
        count = (decimal(start.get("bootcount")) if pending else 0) + 1
        limit = decimal(start.get("bootlimit"))
        exceeded = pending and limit != 0 and count > limit
        row = next(t for t in TABLE if t.pending == pending and t.rolls_back == exceeded)
        ram = {**start, "bootcount": str(count)}
        steps: list[dict[str, str]] = [dict(ram)] if row.stores_bootcount else []
        if row.switches_slot:
            ram[self.slot_var] = self.toggled(start, slots)
            ram.update(upgrade_available="0", ustate=FAILED)
            steps.append(dict(ram))
        after = ram if steps else start
        part = self.part_of(after)
        slot = next((name for name, n in slots.items() if n == part), "?")
        plan = uboot_env.save_plan(before, len(steps), self.location.copy_names, 1)
        expected = Expected(
            row,
            slot,
            count,
            decimal(after.get("upgrade_available")) != 0,
            after,
            plan if len(self.location.copy_names) == 2 else None,
            (plan[-1][0], str(plan[-1][1])) if plan else None,
            frozenset(self.variables),
            steps=tuple(steps),
            state=(
                f"bootcount={count} upgrade_available={after.get('upgrade_available', '<unset>')} "
                f"ustate={after.get('ustate', '<unset>')}"
            ),
        )
        return expected, start

    def slot_started(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        """The slot the slot variable names after the boot (after any toggle)."""
        part = self.part_of(env.vars)
        return next((name for name, n in slots.items() if n == part), None)

    def saves_between(self, before: BootEnv, after: BootEnv) -> int | None:
        return uboot_env.saves_between(before, after, self.location.copy_names)

    def env_problems(self, env: Mapping[str, str]) -> list[str]:
        """The slot variable unset or naming no partition, a counter that is
        not decimal, a `ustate` that is no SWUpdate state."""
        problems = []
        if self.part_of(env) is None:
            problems.append(
                f"{self.slot_var}={env.get(self.slot_var, '<unset>')} names no partition"
            )
        for name in ("upgrade_available", "bootcount", "bootlimit"):
            raw = env.get(name)
            if raw is not None and not raw.strip().isdigit():
                problems.append(f"{name}={raw} is not a decimal number: U-Boot reads its digits")
        if env.get("ustate") not in (None, *USTATES):
            problems.append(f"ustate={env.get('ustate')} is no SWUpdate state (0-7)")
        return problems

    def mark_good(self, env: Mapping[str, str], slot: str) -> dict[str, str]:
        """The commit user space makes: ustate=0, and U-Boot's counter stopped."""
        return {**env, "ustate": "0", "upgrade_available": "0", "bootcount": "0"}

    def rollback(
        self, env: Mapping[str, str], slot: str, slots: Mapping[str, int]
    ) -> dict[str, str]:
        """altbootcmd's fallback: the other slot, ustate=3 (FAILED), nothing pending."""
        return {
            **env,
            self.slot_var: self.toggled(env, slots),
            "ustate": FAILED,
            "upgrade_available": "0",
        }

    def settled(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        """Settled: U-Boot counts nothing and SWUpdate has nothing under test."""
        if decimal(env.get("upgrade_available")) != 0:
            return "upgrade_available is set: U-Boot counts boots towards a fallback"
        if env.get("ustate") == INSTALLED:
            return (
                "ustate=1: the update is under test, but upgrade_available=0: "
                "U-Boot counts none of its boots and never falls back"
            )
        return None

    def bootcount_after_rollback(self, bootlimit: int) -> int:
        """altbootcmd leaves the count it fell back at."""
        return bootlimit + 1
