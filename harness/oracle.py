"""The oracle: Mender's U-Boot contract as a transition table, checked on every boot.

A boot takes the env on the disk when it began (`env_before`) to the env on
the disk after the bootloader's decision (`env_after`) and a decision (slot,
bootcount, upgrade_available) printed on the console. The table below says
what U-Boot with CONFIG_BOOTCOUNT_LIMIT + CONFIG_BOOTCOUNT_ENV and Mender's
`mender_altbootcmd`/`mender_setup` do from any env; `judge_boot` compares a
boot's observation with it and names every difference.

Sources (facts, restated): U-Boot `common/bootcount.c` + `drivers/bootcount/
bootcount_env.c` (the count is loaded and stored only while
`upgrade_available` is set; decimal; `bootlimit=0` means no limit;
`bootcount > bootlimit` runs `altbootcmd`), Mender's U-Boot integration
(`mender_altbootcmd`: switch `mender_boot_part`/`_hex`, clear
`upgrade_available`, saveenv; `mender_setup`: set `mender_saveenv_canary=1`
and saveenv if missing), U-Boot's redundant env (each save writes the other
copy with the flags byte + 1).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.bootloader import BootEnv
from harness.watcher import BootRecord, EnvSave

CANARY = "mender_saveenv_canary"
CONTRACT_VARS = ("mender_boot_part", "mender_boot_part_hex", "upgrade_available", "bootcount")
# Names a bootloader script may use for its own bookkeeping: never in a saved env.
_BOOKKEEPING = re.compile(r"^(ab_|filesize$|fileaddr$)")
# Mender's default env: what U-Boot uses when no env copy is valid.
DEFAULT_ENV = {
    "bootlimit": "1",
    "bootcount": "0",
    "upgrade_available": "0",
    "mender_boot_part": "2",
    "mender_boot_part_hex": "2",
}


@dataclass(frozen=True)
class Transition:
    """One row of the contract: when it applies and what the boot must do."""

    name: str
    pending: bool  # upgrade_available=1 before the boot
    limit_exceeded: bool  # bootlimit != 0 and the incremented bootcount > bootlimit
    switches_slot: bool
    stores_bootcount: bool  # bootcount_store() saves (only while pending)
    clears_pending: bool
    saves: int  # saves before the canary's


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
class Expected:
    """What a boot must do from a given env."""

    transition: Transition
    slot: str
    bootcount: int  # the value in RAM, printed in the decision
    upgrade_available: bool
    env_after: Mapping[str, str]  # the contract's variables on the disk afterwards
    saves: tuple[tuple[str, int], ...]  # (file, flags) of each save, in order

    def describe_saves(self) -> str:
        return ", ".join(f"{f} 0x{fl:x}" for f, fl in self.saves) or "none"

    def describe(self) -> str:
        saves = self.describe_saves()
        return (
            f"{self.transition.name} → slot {self.slot}, bootcount={self.bootcount}, "
            f"upgrade_available={int(self.upgrade_available)}; saves: {saves}"
        )


@dataclass(frozen=True)
class Violation:
    """A boot that did something the contract does not allow."""

    boot: int
    before: str
    expected: str
    observed: str
    differences: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"boot #{self.boot} broke the bootloader contract: {'; '.join(self.differences)}\n"
            f"  state before: {self.before}\n  expected: {self.expected}\n"
            f"  observed: {self.observed}"
        )


class ContractViolation(AssertionError):
    """One or more boots broke the bootloader contract (a product failure)."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__("\n".join(str(v) for v in violations))


def _decimal(raw: str | None) -> int:
    digits = re.match(r"\d*", (raw or "").strip())
    return int(digits.group()) if digits and digits.group() else 0


def _state(env: Mapping[str, str]) -> str:
    keys = (*CONTRACT_VARS, "bootlimit", CANARY)
    return " ".join(f"{k}={env.get(k, '<unset>')}" for k in keys)


def predict(
    before: BootEnv, slots: Mapping[str, int], files: Sequence[str]
) -> tuple[Expected, dict[str, str]]:
    """What the contract makes of the env `before`; also the env it starts from."""
    valid = before.detail.get("copy") != "none"
    env = dict(before.vars) if valid else dict(DEFAULT_ENV)
    pending = env.get("upgrade_available") == "1"
    count = (_decimal(env.get("bootcount")) if pending else 0) + 1
    limit = _decimal(env.get("bootlimit"))
    exceeded = pending and limit != 0 and count > limit
    row = next(t for t in TABLE if t.pending == pending and t.limit_exceeded == exceeded)
    after = dict(env)
    saves = row.saves
    if row.stores_bootcount:
        after["bootcount"] = str(count)
    if row.switches_slot:
        part = next(n for n in slots.values() if str(n) != env.get("mender_boot_part"))
        after["mender_boot_part"] = str(part)
        after["mender_boot_part_hex"] = f"{part:x}"
    if row.clears_pending:
        after["upgrade_available"] = "0"
    if env.get(CANARY) != "1":
        after[CANARY] = "1"
        saves += 1
    if saves and not row.stores_bootcount:
        after["bootcount"] = str(count)  # the RAM value goes out with any save
    part = _decimal(after.get("mender_boot_part"))
    slot = next((name for name, n in slots.items() if n == part), "?")
    expected = Expected(
        row,
        slot,
        count,
        after.get("upgrade_available") == "1",
        after,
        _save_plan(before, saves, files),
    )
    return expected, env


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


def _saves_text(saves: Sequence[EnvSave]) -> str:
    return ", ".join(f"{s.file} 0x{s.flags:x} ({s.why})" for s in saves) or "none"


def judge_boot(
    boot: BootRecord, slots: Mapping[str, int], files: Sequence[str]
) -> Violation | None:
    """Compare one boot with the contract; None when it kept it (or cannot be judged)."""
    if boot.bootloader_slot is None or boot.env_before is None:
        return None  # cut before its decision, or a disk the harness cannot read
    expected, start = predict(boot.env_before, slots, files)
    diffs: list[str] = []
    decision = (boot.bootloader_slot, boot.bootcount, boot.upgrade_available)
    if decision != (expected.slot, expected.bootcount, expected.upgrade_available):
        diffs.append(
            f"decision slot={decision[0]} bootcount={decision[1]} "
            f"upgrade_available={int(bool(decision[2]))}, expected slot={expected.slot} "
            f"bootcount={expected.bootcount} upgrade_available={int(expected.upgrade_available)}"
        )
    observed_saves = tuple((s.file, s.flags) for s in boot.saves)
    if len(files) == 2 and observed_saves != expected.saves:
        diffs.append(f"saves {_saves_text(boot.saves)}, expected {expected.describe_saves()}")
    after = boot.env_after
    if after is not None:
        diffs += _env_differences(start, expected, after, observed_saves)
    if boot.ready and boot.running_slot not in (None, boot.bootloader_slot):
        diffs.append(f"Linux runs slot {boot.running_slot}, the bootloader chose {decision[0]}")
    if not diffs:
        return None
    observed = (
        f"slot {decision[0]}, bootcount={decision[1]}, "
        f"upgrade_available={int(bool(decision[2]))}; saves: {_saves_text(boot.saves)}"
        + (f"; env after: {_state(after.vars)}" if after is not None else "")
    )
    return Violation(
        boot.index, _state(boot.env_before.vars), expected.describe(), observed, tuple(diffs)
    )


def _env_differences(
    start: Mapping[str, str],
    expected: Expected,
    after: BootEnv,
    observed_saves: Sequence[tuple[str, int]],
) -> list[str]:
    diffs: list[str] = []
    if not expected.saves and not observed_saves:
        return diffs  # nothing written: the disk is what it was
    got = after.vars
    for key in sorted(set(start) | set(expected.env_after)):
        want = expected.env_after.get(key)
        if got.get(key) != want:
            diffs.append(f"env after: {key}={got.get(key, '<unset>')}, expected {want}")
    leaked = sorted(k for k in got if _BOOKKEEPING.match(k))
    if leaked:
        diffs.append(f"bootloader bookkeeping saved into the env: {', '.join(leaked)}")
    part, part_hex = got.get("mender_boot_part"), got.get("mender_boot_part_hex")
    if part is not None and part.isdigit() and part_hex != f"{int(part):x}":
        diffs.append(f"mender_boot_part_hex={part_hex} does not follow mender_boot_part={part}")
    if expected.saves and after.detail.get("copy") is not None:
        file, flags = expected.saves[-1]
        got_copy = (after.detail.get("copy"), int(after.detail.get("flags", "-1")))
        if got_copy != (file, flags):
            diffs.append(
                f"env on disk comes from {got_copy[0]} flags 0x{got_copy[1]:x}, "
                f"expected {file} flags 0x{flags:x}"
            )
    return diffs


@dataclass(frozen=True)
class ContractJudge:
    """Judges every boot of a wait; raises ContractViolation naming each bad boot."""

    slots: Mapping[str, int]
    files: tuple[str, ...]

    def __call__(self, boots: Sequence[BootRecord]) -> None:
        violations = [v for b in boots if (v := judge_boot(b, self.slots, self.files))]
        violations += [v for a, b in itertools.pairwise(boots) if (v := judge_quiet(a, b))]
        if violations:
            raise ContractViolation(sorted(violations, key=lambda v: v.boot))


def judge_quiet(boot: BootRecord, following: BootRecord) -> Violation | None:
    """A boot that never reached a shell must leave the env as its bootloader
    did: Linux (a panic, a failed health check) writes the env only to commit."""
    after, next_before = boot.env_after, following.env_before
    if boot.ready or after is None or next_before is None:
        return None
    same = (after.as_dict(), after.detail.get("copy"), after.detail.get("flags")) == (
        next_before.as_dict(),
        next_before.detail.get("copy"),
        next_before.detail.get("flags"),
    )
    if same:
        return None
    changed = sorted(
        k for k in set(after.vars) | set(next_before.vars) if after.get(k) != next_before.get(k)
    )
    return Violation(
        boot.index,
        _state(after.vars),
        "no env write until the next boot (the boot did not reach a shell)",
        _state(next_before.vars),
        (
            f"the env changed after the bootloader's decision although boot #{boot.index} "
            f"ended with '{boot.failure}': {', '.join(changed) or 'copy/flags only'}",
        ),
    )
