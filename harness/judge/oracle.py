"""The oracle: a bootloader's contract as a transition table, checked on every boot.

A boot takes the env on the disk when it began (`env_before`) to the env on
the disk right after the bootloader's saves (`env_after`, read at its handoff
to Linux; for a boot that never reached Linux, at the next reset or
power-on), and Linux runs a slot. From those three observations the oracle
infers the bootloader's decision (`observe`: the slot it started, the count
and pending flag it saved, how many saves) and judges it against what the
contract says a boot must do from `env_before` (`Bootloader.predict`). Any
image, board or bootloader build shows these: a decision line an image
prints (our reference images do) is a cross-check, never a requirement.
Nothing here knows which bootloader it is.

A boot the oracle cannot judge (no env before it, no env after its
bootloader) gets a `Judgement` saying so and why: it is counted and named in
the summary and the report, never passed over in silence.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from harness.bootloaders.protocol import BootEnv, Bootloader, Expected
from harness.judge.judgement import Decision, Judgement, Violation

if TYPE_CHECKING:
    from harness.device.bootrecord import BootRecord, EnvSave

__all__ = [
    "ContractJudge",
    "ContractViolation",
    "Decision",
    "Judgement",
    "Violation",
    "judge_boot",
    "judge_quiet",
    "observe",
    "predict",
]

# Names a bootloader script may use for its own bookkeeping: never in a saved env.
_BOOKKEEPING = re.compile(r"^(ab_|filesize$|fileaddr$)")
# Where the env after a boot was read when the boot never reached Linux.
_READ_LATER = ("reset", "power-on", "end")


class ContractViolation(AssertionError):
    """One or more boots broke the bootloader contract (a product failure)."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__("\n".join(str(v) for v in violations))


def _state(env: Mapping[str, str], keys: Sequence[str]) -> str:
    """An env as a line of the contract's variables (`Bootloader.variables`)."""
    return " ".join(f"{k}={env.get(k, '<unset>')}" for k in keys)


def predict(
    before: BootEnv, slots: Mapping[str, int], bootloader: Bootloader
) -> tuple[Expected, dict[str, str]]:
    """What the bootloader's contract makes of the env `before`; also the env it starts from."""
    return bootloader.predict(before, slots)


def _saves_text(saves: Sequence[EnvSave]) -> str:
    return ", ".join(f"{s.file} 0x{s.flags:x} ({s.why})" for s in saves) or "none"


def observe(boot: BootRecord, slots: Mapping[str, int], bootloader: Bootloader) -> Decision:
    """The bootloader's decision as the device shows it, with no help from the image.

    The slot: the one Linux runs where it said so, else the one the env after
    the bootloader's saves names (Mender's bootloaders boot the slot their env
    names, after any switch). The bootcount and pending flag: the env after,
    where the bootloader saved it (a count kept in RAM is not seen). The
    saves: the env's own counter (U-Boot's redundant flags byte). A boot cut
    short before Linux started no slot."""
    before, after = boot.env_before, boot.env_after
    slot = boot.running_slot if boot.ready else None
    if slot is None and after is not None and not _cut_short(boot):
        slot = bootloader.slot_started(after, slots)  # a boot cut short started none
    saves = bootloader.saves_between(before, after) if before and after else None
    if after is None:
        return Decision(slot, None, None, saves)
    saved = (saves is None or saves > 0) and "bootcount" in after.vars
    return Decision(slot, after.bootcount if saved else None, after.upgrade_available, saves)


def _cut_short(boot: BootRecord) -> bool:
    """Ended before its bootloader was done, by something other than the
    bootloader itself (a power cut, the watchdog, a hang): it may have made
    only the first saves of its plan."""
    return boot.env_after_at in _READ_LATER and boot.reset_by != "guest-reset"


def judge_boot(boot: BootRecord, slots: Mapping[str, int], bootloader: Bootloader) -> Judgement:
    """Judge one boot against the bootloader's contract: ok, a violation
    (naming every difference), or "unjudged" with the reason."""
    if boot.env_before is None:
        return Judgement(
            boot.index,
            "unjudged",
            "no env before: the env on the disk when it began was not read "
            "(no host view of the disk, and none read over the shell before it)",
        )
    expected, start = bootloader.predict(boot.env_before, slots)
    seen = observe(boot, slots, bootloader)
    after = boot.env_after
    diffs: list[str] = []
    if seen.slot is not None and seen.slot != expected.slot:
        how = "Linux runs" if boot.ready and boot.running_slot else "the env after it names"
        diffs.append(f"slot {seen.slot} started ({how} it), expected slot {expected.slot}")
    if after is not None:
        if _cut_short(boot):
            diffs += _partial_differences(boot.env_before, start, expected, after, bootloader)
        else:
            diffs += _full_differences(boot.env_before, start, expected, after, bootloader, seen)
    diffs += _line_differences(boot, expected)
    observed = (
        f"slot {seen.slot}, bootcount={seen.bootcount}, upgrade_available="
        f"{'?' if seen.upgrade_available is None else int(seen.upgrade_available)}, "
        f"saves={'?' if seen.saves is None else seen.saves}"
        + (f"; saves printed: {_saves_text(boot.saves)}" if boot.saves else "")
        + (f"; env after: {_state(after.vars, bootloader.variables)}" if after else "")
    )
    if diffs:
        violation = Violation(
            boot.index,
            _state(boot.env_before.vars, bootloader.variables),
            expected.describe(),
            observed,
            tuple(diffs),
        )
        return Judgement(boot.index, "violation", "; ".join(diffs), seen, violation)
    if after is None:
        if boot.line is not None:
            return Judgement(
                boot.index, "ok", "on the image's decision line: no env after was readable", seen
            )
        return Judgement(boot.index, "unjudged", _why_no_env_after(boot), seen)
    how = "cut short, wrote a prefix of its saves" if _cut_short(boot) else expected.transition.name
    return Judgement(boot.index, "ok", how, seen)


def _why_no_env_after(boot: BootRecord) -> str:
    if boot.handoff:
        return (
            "no env after its bootloader: the disk could not be read at its handoff "
            "(no host view of the disk, e.g. a board)"
        )
    if boot.reached_linux:
        return (
            "no env after its bootloader: Linux started before the disk was read "
            "(the bootloader has no handoff line, BootMarkers.handoff)"
        )
    return "no env after its bootloader: the disk was not read when the boot ended"


def _full_differences(
    before: BootEnv,
    start: Mapping[str, str],
    expected: Expected,
    after: BootEnv,
    bootloader: Bootloader,
    seen: Decision,
) -> list[str]:
    diffs: list[str] = []
    want = len(expected.saves) if expected.saves is not None else None
    if seen.saves is not None and want is not None and seen.saves != want:
        diffs.append(
            f"{seen.saves} env saves ({_copy_text(_copy_of(before))} → "
            f"{_copy_text(_copy_of(after))}), expected {want}"
        )
    diffs += _env_differences(start, expected, after, seen.saves)
    if expected.saves or seen.saves:
        diffs += [f"env after: {p}" for p in bootloader.env_problems(after.vars)]
    return diffs


def _partial_differences(
    before: BootEnv,
    start: Mapping[str, str],
    expected: Expected,
    after: BootEnv,
    bootloader: Bootloader,
) -> list[str]:
    """A boot cut short must leave the env it began with, or the env after one
    of its saves in order (a torn save leaves its copy invalid: the one before)."""
    count = bootloader.saves_between(before, after)
    steps = expected.steps or ((expected.env_after,) if expected.saves else ())
    if count is not None and (expected.steps or not expected.saves):
        if count > len(steps):
            return [f"{count} env saves before it was cut, the contract makes {len(steps)}"]
        if count == 0:
            return _env_differences(start, replace(expected, saves=(), copy_after=None), after, 0)
        plan = expected.saves[:count] if expected.saves is not None else None
        partial = replace(
            expected,
            env_after=steps[count - 1],
            saves=plan,
            copy_after=(plan[-1][0], str(plan[-1][1])) if plan else None,
        )
        return _env_differences(start, partial, after, count)
    # The format does not count its saves: any state the plan passes through will do.
    for state in (start, *steps):
        candidate = replace(expected, env_after=state, copy_after=None)
        if not _env_differences(start, candidate, after, None):
            return []
    return [
        "the env after the cut is neither the env it began with nor one its saves leave: "
        + _state(after.vars, bootloader.variables)
    ]


def _line_differences(boot: BootRecord, expected: Expected) -> list[str]:
    """The image's own lines, where it prints them, must tell the same story."""
    line = boot.line
    if line is None:
        return []
    diffs: list[str] = []
    decision = (line.slot, line.bootcount, line.upgrade_available)
    if decision != (expected.slot, expected.bootcount, expected.upgrade_available):
        diffs.append(
            f"decision slot={decision[0]} bootcount={decision[1]} "
            f"upgrade_available={int(bool(decision[2]))}, expected slot={expected.slot} "
            f"bootcount={expected.bootcount} upgrade_available={int(expected.upgrade_available)}"
        )
    printed = tuple((s.file, s.flags) for s in boot.saves)
    if expected.saves is not None and printed != expected.saves and not _cut_short(boot):
        diffs.append(f"saves {_saves_text(boot.saves)}, expected {expected.describe_saves()}")
    if boot.ready and boot.running_slot not in (None, line.slot):
        diffs.append(f"Linux runs slot {boot.running_slot}, the bootloader chose {line.slot}")
    return diffs


def _copy_of(env: BootEnv) -> tuple[str | None, str | None]:
    return env.detail.get("copy"), env.detail.get("flags")


def _env_differences(
    start: Mapping[str, str],
    expected: Expected,
    after: BootEnv,
    saves: int | None,
) -> list[str]:
    """The env after against the contract's; `saves` is how many the disk
    shows (None: the format cannot tell, so the env is compared all the same)."""
    diffs: list[str] = []
    if not expected.saves and saves == 0 and not expected.changes_disk:
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
    """Judges every boot (`judge`), and raises ContractViolation naming each
    bad boot (`enforce`; not where `enforcing` is off: the judgements are
    still recorded and counted)."""

    bootloader: Bootloader
    slots: Mapping[str, int]
    enforcing: bool = True

    def judge(self, boot: BootRecord, following: BootRecord | None) -> Judgement:
        judgement = judge_boot(boot, self.slots, self.bootloader)
        quiet = (
            judge_quiet(boot, following, self.bootloader.variables, self.marked_bad(boot))
            if following is not None
            else None
        )
        if quiet is None:
            return judgement
        if judgement.violation is not None:
            quiet = replace(
                judgement.violation,
                differences=judgement.violation.differences + quiet.differences,
            )
        reason = "; ".join(quiet.differences)
        return Judgement(boot.index, "violation", reason, judgement.decision, quiet)

    def marked_bad(self, boot: BootRecord) -> dict[str, str] | None:
        """The env after the updater's mark-bad of the slot a boot ran (the
        contract's `rollback`), where its health check failed there: what
        RAUC's integration writes before it reboots. None otherwise."""
        if boot.health != "fail" or boot.env_after is None or boot.env_before is None:
            return None
        # It never reached its ready line: the slot is the one the contract
        # says it started (judge_boot holds the boot to that).
        slot = self.bootloader.predict(boot.env_before, self.slots)[0].slot
        if slot not in self.slots:
            return None
        return self.bootloader.rollback(boot.env_after.vars, slot, self.slots)

    def enforce(self, judgements: Sequence[Judgement]) -> None:
        violations = [j.violation for j in judgements if j.violation is not None]
        if violations and self.enforcing:
            raise ContractViolation(sorted(violations, key=lambda v: v.boot))

    def __call__(self, boots: Sequence[BootRecord]) -> list[Judgement]:
        """Judge consecutive boots; raise for the violations, else return the judgements."""
        pairs = itertools.zip_longest(boots, boots[1:])
        judgements = [self.judge(boot, following) for boot, following in pairs if boot]
        self.enforce(judgements)
        return judgements


def judge_quiet(
    boot: BootRecord,
    following: BootRecord,
    keys: Sequence[str],
    marked_bad: Mapping[str, str] | None = None,
) -> Violation | None:
    """A boot that never reached a shell must leave the env as its bootloader
    did: Linux (a panic, a failed health check) writes the env only to commit,
    or, after a failed health check, as the updater's mark-bad (`marked_bad`:
    the env that leaves, judged on the contract's variables `keys`)."""
    after, next_before = boot.env_after, following.env_before
    if boot.ready or after is None or next_before is None:
        return None
    if marked_bad is not None and all(marked_bad.get(k) == next_before.get(k) for k in keys):
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
        _state(after.vars, keys),
        "no env write until the next boot (the boot did not reach a shell)",
        _state(next_before.vars, keys),
        (
            f"the env changed after the bootloader's decision although boot #{boot.index} "
            f"ended with '{boot.failure}': {', '.join(changed) or 'copy/flags only'}",
        ),
    )
