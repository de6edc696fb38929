"""The oracle: a bootloader's contract as a transition table, checked on every boot.

A boot takes the env on the disk when it began (`env_before`) to the env on
the disk after the bootloader's decision (`env_after`) and a decision (slot,
bootcount, upgrade_available) printed on the console. The bootloader object
(`harness.bootloaders`) holds its contract's table and says what a boot must
do from any env (`predict`); `judge_boot` compares a boot's observation with
that and names every difference. Nothing here knows which bootloader it is.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.bootloaders.protocol import BootEnv, Bootloader, Expected
from harness.watcher import BootRecord, EnvSave

CANARY = "mender_saveenv_canary"
CONTRACT_VARS = ("mender_boot_part", "mender_boot_part_hex", "upgrade_available", "bootcount")
# Names a bootloader script may use for its own bookkeeping: never in a saved env.
_BOOKKEEPING = re.compile(r"^(ab_|filesize$|fileaddr$)")


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


def _state(env: Mapping[str, str]) -> str:
    keys = (*CONTRACT_VARS, "bootlimit", CANARY)
    return " ".join(f"{k}={env.get(k, '<unset>')}" for k in keys)


def predict(
    before: BootEnv, slots: Mapping[str, int], bootloader: Bootloader
) -> tuple[Expected, dict[str, str]]:
    """What the bootloader's contract makes of the env `before`; also the env it starts from."""
    return bootloader.predict(before, slots)


def _saves_text(saves: Sequence[EnvSave]) -> str:
    return ", ".join(f"{s.file} 0x{s.flags:x} ({s.why})" for s in saves) or "none"


def judge_boot(
    boot: BootRecord, slots: Mapping[str, int], bootloader: Bootloader
) -> Violation | None:
    """Compare one boot with the bootloader's contract; None when it kept it
    (or cannot be judged)."""
    if boot.bootloader_slot is None or boot.env_before is None:
        return None  # cut before its decision, or a disk the harness cannot read
    expected, start = bootloader.predict(boot.env_before, slots)
    diffs: list[str] = []
    decision = (boot.bootloader_slot, boot.bootcount, boot.upgrade_available)
    if decision != (expected.slot, expected.bootcount, expected.upgrade_available):
        diffs.append(
            f"decision slot={decision[0]} bootcount={decision[1]} "
            f"upgrade_available={int(bool(decision[2]))}, expected slot={expected.slot} "
            f"bootcount={expected.bootcount} upgrade_available={int(expected.upgrade_available)}"
        )
    observed_saves = tuple((s.file, s.flags) for s in boot.saves)
    if expected.saves is not None and observed_saves != expected.saves:
        diffs.append(f"saves {_saves_text(boot.saves)}, expected {expected.describe_saves()}")
    after = boot.env_after
    if after is not None:
        diffs += _env_differences(start, expected, after, observed_saves)
        if expected.saves or observed_saves:
            diffs += [f"env after: {p}" for p in bootloader.env_problems(after.vars)]
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
    if not expected.saves and not observed_saves and not expected.changes_disk:
        return diffs  # nothing written: the disk is what it was
    got = after.vars
    keys = set(start) | set(expected.env_after)
    if expected.judged_keys is not None:
        keys &= expected.judged_keys
    for key in sorted(keys):
        want = expected.env_after.get(key)
        if got.get(key) != want:
            diffs.append(f"env after: {key}={got.get(key, '<unset>')}, expected {want}")
    leaked = sorted(k for k in got if _BOOKKEEPING.match(k))
    if leaked:
        diffs.append(f"bootloader bookkeeping saved into the env: {', '.join(leaked)}")
    if expected.copy_after is not None and after.detail.get("copy") is not None:
        got_copy = (after.detail.get("copy"), after.detail.get("flags"))
        if got_copy != expected.copy_after:
            diffs.append(
                f"env on disk comes from {_copy_text(got_copy)}, "
                f"expected {_copy_text(expected.copy_after)}"
            )
    return diffs


def _copy_text(copy: tuple[str | None, str | None]) -> str:
    name, flags = copy
    return f"{name} flags 0x{int(flags):x}" if flags is not None else str(name)


@dataclass(frozen=True)
class ContractJudge:
    """Judges every boot of a wait; raises ContractViolation naming each bad boot."""

    bootloader: Bootloader
    slots: Mapping[str, int]

    def __call__(self, boots: Sequence[BootRecord]) -> None:
        violations = [v for b in boots if (v := judge_boot(b, self.slots, self.bootloader))]
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
