"""What every bootloader contract provides, and the values they share.

A contract is an updater's agreement with its bootloader, spelled in env
variables: Mender's (`mender_boot_part`, `upgrade_available`, `bootcount`),
RAUC's (`BOOT_ORDER` and `BOOT_<slot>_LEFT` on U-Boot; `ORDER`, `<slot>_OK`,
`<slot>_TRY` on GRUB), SWUpdate's (`ustate`, `upgrade_available`,
`bootcount`/`bootlimit` and the slot variable its `bootenv` sets). Each
implementation says which variables it owns, where they are stored, how to
read them from the host (straight out of the disk image) and from the running
device, how a boot announces itself on the console, which transitions a boot
may make (the table the oracle judges every boot against), what a commit and
a rollback write, and when nothing is pending. Scenarios, faults and the
oracle only ever talk to this protocol.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from harness.device.shell import ShellLike
from harness.errors import DeviceError

if TYPE_CHECKING:
    from harness.targets.target import EnvLocation

# A lookbehind, not a consumed "\n": SerialRecorder matches the banner at the
# start of a line (after its CRs), where a pattern that must begin with "\n"
# only matched when a blank line came first. A CR also ends a line here,
# for UARTs that send "\n\r".
LINE_START = rb"(?:^|(?<=[\r\n]))\r*"


@dataclass(frozen=True)
class ContractReading:
    """What the target's contract reads in an env (`read_under`): the partition
    of the slot it starts (None: it names none) and why it is not settled
    (None: settled, `Bootloader.settled`)."""

    part: int | None
    unsettled: str | None


@dataclass(frozen=True)
class BootEnv:
    """A snapshot of the bootloader env, with where it was read from and, once
    read under the target's contract, what that contract makes of it."""

    vars: Mapping[str, str]
    source: str
    detail: Mapping[str, str] = field(default_factory=dict)
    reading: ContractReading | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "vars", MappingProxyType(dict(self.vars)))
        object.__setattr__(self, "detail", MappingProxyType(dict(self.detail)))

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.vars.get(key, default)

    def _number(self, key: str, default: int) -> int:
        return decimal(self.vars.get(key), default)

    @property
    def boot_part(self) -> int | None:
        """The partition the env boots: as its contract reads it, else
        (an env read by no contract) Mender's `mender_boot_part`."""
        if self.reading is not None and self.reading.part is not None:
            return self.reading.part
        raw = self.vars.get("mender_boot_part")
        return int(raw) if raw else None

    @property
    def pending(self) -> bool:
        """An update waits for its outcome, as the contract says (`settled`);
        an env read by no contract: `upgrade_available`."""
        if self.reading is not None:
            return self.reading.unsettled is not None
        return self.upgrade_available

    @property
    def upgrade_available(self) -> bool:
        return self.vars.get("upgrade_available", "0") == "1"

    @property
    def bootcount(self) -> int:
        return self._number("bootcount", 0)

    @property
    def bootlimit(self) -> int | None:
        return self._number("bootlimit", -1) if "bootlimit" in self.vars else None

    def as_dict(self) -> dict[str, str]:
        return dict(sorted(self.vars.items()))


def read_under(bootloader: Bootloader, env: BootEnv, slots: Mapping[str, int]) -> BootEnv:
    """`env` with what the contract `bootloader` reads in it: the slot it starts
    (for an env with a valid copy) and whether it is settled. Scenarios and the
    verdict then ask `boot_part` and `pending` whatever the contract."""
    valid = env.detail.get("copy") != "none"
    slot = bootloader.slot_started(env, slots) if valid else None
    unsettled = bootloader.settled(env, slots)
    if slot is None and valid and unsettled is None:
        # Settled: the next boots start the slot it runs. A contract whose env
        # does not name the slot a boot started (RAUC's GRUB tries) names it so.
        slot = bootloader.predict(env, slots)[0].slot
    part = slots.get(slot) if slot is not None else None
    return replace(env, reading=ContractReading(part, unsettled))


def env_listing(shell: ShellLike, command: str, source: str, fix: str) -> BootEnv:
    """The env as a device tool lists it (`name=value` lines: fw_printenv,
    grub-editenv list, ab-env list); a failing tool is the device's fault."""
    code, out = shell.exec(command)
    if code != 0:
        lines = out.strip().splitlines()
        last = lines[-1][-200:] if lines else "no output"
        raise DeviceError(f"{command} failed on the device (exit {code}): {last}", fix)
    pairs = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return BootEnv(pairs, source)


def decimal(raw: str | None, default: int = 0) -> int:
    """A decimal env value read as U-Boot's env_get_ulong(name, 10, ...) reads
    it: the leading digits count, anything else reads as 0; unset is `default`."""
    if raw is None or raw == "":
        return default
    digits = re.match(r"\d*", raw.strip())
    return int(digits.group()) if digits and digits.group() else 0


@dataclass(frozen=True)
class BootMarkers:
    """Console lines that delimit and describe a boot (regexes over bytes).

    `banner` starts a boot; `handoff` is the bootloader's own last line before
    Linux runs (U-Boot's `Starting kernel ...`): every save of the boot is on
    the disk then, so the harness reads the env there. `decision` is a line an
    image may print with the slot it chose (groups: slot, bootcount,
    upgrade_available): a cross-check only, absent on stock boards; where
    present the env is read at it (it comes after the saves too).
    `save` is one env save (groups: why, file, and optionally flags as hex);
    `no_kernel` the bootloader failing to start the chosen slot's kernel
    (group: slot); `fatal` the bootloader giving up (group: why).
    """

    banner: re.Pattern[bytes]
    decision: re.Pattern[bytes] | None
    save: re.Pattern[bytes] | None = None
    no_kernel: re.Pattern[bytes] | None = None
    fatal: re.Pattern[bytes] | None = None
    handoff: re.Pattern[bytes] | None = None


@dataclass(frozen=True)
class Transition:
    """One row of a bootloader's contract: when it applies and what the boot must do."""

    name: str
    pending: bool  # upgrade_available=1 before the boot
    rolls_back: bool  # the condition for going back holds (U-Boot: bootcount > bootlimit)
    switches_slot: bool
    stores_bootcount: bool  # the count is saved (only while pending)
    clears_pending: bool
    saves: int  # saves of the contract's variables (not counting repairs or the canary)


@dataclass(frozen=True)
class Expected:
    """What a boot must do from a given env.

    `saves` lists the (file, flags) each save writes, in order (None: the
    order is not checked, e.g. a single copy); `copy_after` is the copy (and
    its flags, where the format has them) the env on the disk must be read
    from afterwards (None: not checked); `judged_keys` the variables the env
    after is compared on (None: every variable, the others must be kept);
    `changes_disk` that the boot writes the env's files even where it reports
    no save (GRUB's lock repair), so the env after is judged all the same.
    `steps` is the env on the disk after each save in order (the last one is
    `env_after`; empty where the contract does not say): a boot cut short
    (power, watchdog, hang) must leave one of them, or the env it began with.
    """

    transition: Transition
    slot: str
    bootcount: int | None  # the value in RAM, printed in the decision (None: unset)
    upgrade_available: bool
    env_after: Mapping[str, str]  # the contract's variables on the disk afterwards
    saves: tuple[tuple[str, int], ...] | None
    copy_after: tuple[str, str | None] | None = None
    judged_keys: frozenset[str] | None = None
    changes_disk: bool = False
    steps: tuple[Mapping[str, str], ...] = ()
    # The decision in the contract's own words, where bootcount/upgrade_available
    # are not its variables (RAUC's tries left, SWUpdate's ustate).
    state: str | None = None

    def describe_saves(self) -> str:
        return ", ".join(f"{f} 0x{fl:x}" for f, fl in self.saves or ()) or "none"

    def describe(self) -> str:
        if self.state is not None:
            return (
                f"{self.transition.name} → slot {self.slot}, {self.state}; "
                f"saves: {self.describe_saves()}"
            )
        return (
            f"{self.transition.name} → slot {self.slot}, bootcount={self.bootcount}, "
            f"upgrade_available={int(self.upgrade_available)}; saves: {self.describe_saves()}"
        )


class Bootloader(Protocol):
    """A bootloader's side of the A/B contract."""

    @property
    def name(self) -> str: ...

    @property
    def markers(self) -> BootMarkers: ...

    @property
    def location(self) -> EnvLocation:
        """Where its env lives: files on a partition of the boot disk (read from
        the disk image on the host, or from the device's mount of it)."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """What the contract lets a scenario do (e.g. "bootlimit-n")."""
        ...

    @property
    def transitions(self) -> tuple[Transition, ...]:
        """The contract's rows, one of which every boot must follow."""
        ...

    @property
    def variables(self) -> tuple[str, ...]:
        """The env variables the contract owns: what its boots, commits and
        rollbacks write, and what a report shows of an env."""
        ...

    def mark_good(self, env: Mapping[str, str], slot: str) -> dict[str, str]:
        """The env after the running `slot` is committed (the updater's mark-good)."""
        ...

    def rollback(
        self, env: Mapping[str, str], slot: str, slots: Mapping[str, int]
    ) -> dict[str, str]:
        """The env after `slot` is given up: the updater's mark-bad where it has
        one, else the contract's own fallback (what the bootloader writes)."""
        ...

    def settled(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        """None when nothing is pending (the next boots start the same slot and
        change nothing that matters), else why not, in the contract's words."""
        ...

    def predict(self, before: BootEnv, slots: Mapping[str, int]) -> tuple[Expected, dict[str, str]]:
        """What a boot makes of the env `before`; also the env it starts from."""
        ...

    def slot_started(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        """The slot a boot that left `env` on the disk (after its saves) started:
        the one the contract's variables name, or the contract's fallback for
        an env it rejects. None: the env names none."""
        ...

    def saves_between(self, before: BootEnv, after: BootEnv) -> int | None:
        """How many saves took the env on the disk from `before` to `after`
        (U-Boot's redundant env: the flags byte counts them); None where the
        format cannot tell."""
        ...

    def env_problems(self, env: Mapping[str, str]) -> list[str]:
        """What is wrong with a saved env: a contract variable missing or
        invalid, or a derived one that does not follow its source."""
        ...

    def bootcount_after_rollback(self, bootlimit: int) -> int:
        """The bootcount a rollback leaves (U-Boot keeps it, Mender's GRUB resets it)."""
        ...

    def env_from_image(self, disk: Path) -> BootEnv: ...

    def env_from_device(self, shell: ShellLike) -> BootEnv: ...

    def corrupt_env_copy(self, disk: Path, which: str) -> dict[str, object]:
        """Corrupt env copies on the disk ("newest", "oldest" or "all") and
        return the proof: which copies, and that they no longer read as valid."""
        ...
