"""RAUC's GRUB contract: `ORDER`, `<slot>_OK`, `<slot>_TRY` in one grubenv file.

Facts it rests on, restated (RAUC's documentation, docs/integration.rst
"GRUB"; the example configuration it points to, contrib/grub.conf; RAUC's
GRUB backend, which writes the env with grub-editenv):
- one grubenv file outside the slots (`grubenv=` in system.conf, by default
  /boot/grub/grubenv; on UEFI e.g. the ESP's /EFI/BOOT/grubenv); no second
  copy, no lock;
- the script starts from `ORDER="A B"` and every `_OK`/`_TRY` 0, then
  `load_env` (which fails on a file without a grubenv block: the defaults
  stay); it walks `ORDER`, setting each slot's `_TRY=1` as it looks at it,
  and boots the first that was `_OK=1` with `_TRY=0`: one try per slot. With
  none, it boots the rescue entry and first sets `_TRY=0` again on every
  `_OK=1` slot, so the next boot walks `ORDER` afresh. It saves
  `A_TRY A_OK B_TRY B_OK ORDER` (the documented `save_env` line), which GRUB
  can only do into an existing block;
- `rauc status mark-good` writes `<slot>_OK=1 <slot>_TRY=0`; `mark-bad`
  `<slot>_OK=0 <slot>_TRY=0`; an install puts the slot first in `ORDER`
  with `_OK=1 _TRY=0`. RAUC calls a slot good when `ORDER` lists it with
  `_OK=1` and `_TRY=0`.
So every boot spends its slot's only try; the health path must mark it good
again before the next boot, or that boot falls back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.bootloaders.protocol import (
    LINE_START,
    BootEnv,
    BootMarkers,
    Expected,
    Transition,
    env_listing,
)
from harness.device.shell import ShellLike
from harness.envformat import GRUB_HEADER, GrubEnvCorrupt, parse_grubenv
from harness.errors import DeviceError, HarnessConfigError
from harness.images.diskimage import read_partition_files, write_partition_file
from harness.targets.target import EnvLocation

ORDER = "ORDER"
RESCUE = "rescue"
# RAUC's default grubenv path on the device (docs/integration.rst).
DEVICE_GRUBENV = "/boot/grub/grubenv"

# (pending, rolls back, switches slot, stores, clears, saves); a tried slot is skipped.
_BOOTS = Transition(
    "first slot of ORDER is OK and untried: mark it tried, boot it", *(False,) * 3, True, False, 1
)
_FALLS_BACK = Transition(
    "first slot of ORDER was tried without a mark-good: boot the next OK, untried slot",
    *(True,) * 4,
    False,
    1,
)
_RESCUE = Transition(
    "no slot is OK and untried: clear the OK slots' tries, boot the rescue entry",
    *(True,) * 4,
    False,
    1,
)
_NO_ENV = Transition(
    "no grubenv block: GRUB's defaults, rescue entry, nothing saved", *(False,) * 5, 0
)
TABLE: tuple[Transition, ...] = (_BOOTS, _FALLS_BACK, _RESCUE, _NO_ENV)

MARKERS = BootMarkers(
    # A stock GRUB prints its version in the menu's title, and nothing when it
    # saves its env or hands over to Linux; the reference image's script
    # (qemu-images/x86_64-grub-rauc) prints its own banner and, after its
    # save_env, the slot it hands over to: the env after is read there.
    banner=re.compile(
        LINE_START
        + rb"(?:\x1b\[[0-9;=?]*[A-Za-z])*\s*(?:GNU GRUB\s+version \d|GRUB \d+\.\d+\S* \(ab-harness)"
    ),
    decision=None,
    no_kernel=re.compile(LINE_START + rb"ab-boot: kernel of slot (?P<slot>\w+) did not boot"),
    handoff=re.compile(LINE_START + rb"ab-boot: rauc slot=\w+ "),
)


def ok_var(slot: str) -> str:
    return f"{slot}_OK"


def try_var(slot: str) -> str:
    return f"{slot}_TRY"


def flag(raw: str | None) -> int:
    """A value as GRUB's `[ "$X" -eq 1 ]` reads it: leading digits, else 0."""
    digits = re.match(r"-?\d*", (raw or "").strip())
    text = digits.group() if digits else ""
    return int(text) if text not in ("", "-") else 0


def run_script(
    env: Mapping[str, str] | None, slots: Mapping[str, int]
) -> tuple[Transition, str, dict[str, str]]:
    """RAUC's grub.cfg on `env` (None: no grubenv block): the row, the slot
    (or the rescue entry) and GRUB's variables when it saves."""
    ram = {ORDER: " ".join(slots)}
    for slot in slots:
        ram[ok_var(slot)] = ram[try_var(slot)] = "0"
    if env is None:
        return _NO_ENV, RESCUE, ram
    ram.update(env)
    chosen, first = None, True
    for slot in ram[ORDER].split():
        if slot not in slots:
            continue  # the script's branches know only its own slots
        ok, tried = flag(ram.get(ok_var(slot))), flag(ram.get(try_var(slot)))
        ram[try_var(slot)] = "1"
        if ok == 1 and tried == 0:
            chosen = slot
            break
        first = False
    if chosen is None:
        for slot in slots:
            if flag(ram.get(ok_var(slot))) == 1 and flag(ram.get(try_var(slot))) == 1:
                ram[try_var(slot)] = "0"
        return _RESCUE, RESCUE, ram
    return (_BOOTS if first else _FALLS_BACK), chosen, ram


@dataclass(frozen=True)
class GrubRaucEnv:
    """GRUB running RAUC's grub.cfg, its env one grubenv file on a partition."""

    location: EnvLocation
    name: str = "grub-rauc"
    markers: BootMarkers = MARKERS
    bootnames: tuple[str, ...] = ("A", "B")
    device_path: str = DEVICE_GRUBENV
    # One file, no lock: nothing a scenario on redundant copies can use.
    capabilities: frozenset[str] = frozenset()

    @property
    def transitions(self) -> tuple[Transition, ...]:
        return TABLE

    @property
    def variables(self) -> tuple[str, ...]:
        return (ORDER, *(v for s in self.bootnames for v in (ok_var(s), try_var(s))))

    @property
    def file(self) -> str:
        return self.location.files[0]

    def env_from_image(self, disk: Path) -> BootEnv:
        """The grubenv file GRUB would load; with no grubenv block in it, an env
        of no copy (`copy: none`), as GRUB's load_env fails on it."""
        (blob,) = read_partition_files(disk, self.location.partition, (self.file,))
        source = f"host:{disk.name} p{self.location.partition}:{self.file}"
        try:
            parsed = parse_grubenv(blob, source=source)
        except GrubEnvCorrupt as err:
            return BootEnv({}, source, {"copy": "none", "error": str(err)})
        return BootEnv(parsed.vars, source, {"copy": self.file})

    def env_from_device(self, shell: ShellLike) -> BootEnv:
        """`grub-editenv FILE list`, the tool RAUC itself reads the env with."""
        fix = "check that the partition holding the grubenv is mounted there"
        command = f"grub-editenv {self.device_path} list"
        return env_listing(shell, command, f"device:{self.device_path}", fix)

    def predict(self, before: BootEnv, slots: Mapping[str, int]) -> tuple[Expected, dict[str, str]]:
        """The script run on `before`; what it saves lands in the same file."""
        valid = before.detail.get("copy") != "none"
        start = dict(before.vars)
        row, slot, ram = run_script(start if valid else None, slots)
        saved = {**start, **ram} if row.saves else start
        state = " ".join(f"{k}={ram.get(k, '<unset>')}" for k in self.variables)
        expected = Expected(
            row,
            slot,
            None,
            self.settled(BootEnv(saved, "predicted"), slots) is not None,
            saved,
            ((self.file, 0),) if row.saves else (),
            (self.file, None) if valid else None,
            frozenset({ORDER, *(v for s in slots for v in (ok_var(s), try_var(s)))}),
            steps=(saved,) if row.saves else (),
            state=state,
        )
        return expected, start

    def slot_started(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        """Right after a boot's save, every slot the script looked at reads
        `_TRY=1` and the one it booted is the last OK slot among them: the
        last OK slot of the leading run of tried slots in ORDER. None where
        that run holds no OK slot (the rescue entry, which cleared the OK
        slots' tries). Read later, after a mark-good, the same env can mean
        "booted, not yet marked good" or "failed earlier, skipped since":
        a settled env names its slot by the slot the next boot starts
        (`read_under`)."""
        order = [s for s in (env.get(ORDER) or " ".join(slots)).split() if s in slots]
        booted = None
        for slot in order:
            if flag(env.get(try_var(slot))) != 1:
                break
            if flag(env.get(ok_var(slot))) == 1:
                booted = slot
        return booted

    def saves_between(self, before: BootEnv, after: BootEnv) -> int | None:
        return None  # grubenv has no counter

    def env_problems(self, env: Mapping[str, str]) -> list[str]:
        """An unset or empty ORDER, or a slot's `_OK`/`_TRY` unset or not 0/1."""
        problems = [] if env.get(ORDER, "").split() else [f"{ORDER} is unset or empty"]
        for name in (v for v in self.variables if v != ORDER):
            if env.get(name) not in ("0", "1"):
                problems.append(f"{name}={env.get(name, '<unset>')} is not 0 or 1")
        return problems

    def mark_good(self, env: Mapping[str, str], slot: str) -> dict[str, str]:
        """`rauc status mark-good`: `_OK=1 _TRY=0`."""
        return {**env, ok_var(slot): "1", try_var(slot): "0"}

    def rollback(
        self, env: Mapping[str, str], slot: str, slots: Mapping[str, int]
    ) -> dict[str, str]:
        """`rauc status mark-bad`: `_OK=0 _TRY=0` (ORDER unchanged)."""
        return {**env, ok_var(slot): "0", try_var(slot): "0"}

    def settled(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        """Settled: the first `_OK=1` slot of ORDER is untried (marked good
        after its last boot), so the next boot starts it again."""
        _, slot, _ = run_script(env.vars if env.detail.get("copy") != "none" else None, slots)
        order = [s for s in (env.get(ORDER) or " ".join(slots)).split() if s in slots]
        first_ok = next((s for s in order if flag(env.get(ok_var(s))) == 1), None)
        if first_ok is None:
            return "no slot of ORDER is OK: GRUB boots the rescue entry"
        if slot != first_ok:
            return (
                f"{try_var(first_ok)}=1: slot {first_ok} booted without a mark-good since; "
                f"the next boot starts {slot}"
            )
        return None

    def corrupt_env_copy(self, disk: Path, which: str) -> dict[str, object]:
        """A torn grub-editenv write of the one file (there is no other copy,
        so every choice hits it): its header gone, which GRUB's load_env and
        save_env refuse. Proof: the file read back holds no grubenv block."""
        if which not in ("newest", "oldest", "all"):
            raise HarnessConfigError(
                f"no env copy '{which}'", "corrupt the 'newest', 'oldest' or 'all' copies"
            )
        (blob,) = read_partition_files(disk, self.location.partition, (self.file,))
        torn = b"\0" * len(GRUB_HEADER) + blob[len(GRUB_HEADER) :]
        write_partition_file(disk, self.location.partition, self.file, torn)
        if self.env_from_image(disk).detail.get("copy") != "none":
            raise DeviceError(f"tearing {self.file} left a grubenv block", "harness bug")
        return {"corrupted": [self.file], "newest_before": self.file, "valid_after": []}

    def bootcount_after_rollback(self, bootlimit: int) -> Literal[0]:
        return 0  # no bootcount in this contract: a scenario reading one reads 0
