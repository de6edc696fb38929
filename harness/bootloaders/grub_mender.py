"""GRUB with Mender's grubenv contract (grub-mender-grubenv), read from the host.

The env is two grubenv copies on the ESP, each with a lock grubenv:
`mender_grubenv{1,2}/env` holds `bootcount`, `mender_boot_part` and
`upgrade_available` (and whatever else Linux stored), `mender_grubenv{1,2}/lock`
holds `editing`, 1 while its env is being written. Every writer, GRUB's
`save_env` and Linux's `grub-editenv`, writes copy 2 then copy 1, each inside
its lock. GRUB has no checksum and no arithmetic, so (facts restated from
Mender's integration, `mender_check_and_restore_env`, `mender_load_env`,
`mender_check_grubenv_valid`, `mender_load_env_with_rollback`):
- a lock that does not read editing=0 marks its env torn: if lock 2 is not
  clean, GRUB rewrites copy 2's variables from copy 1; else if lock 1 is not
  clean, copy 1 from copy 2; then it reads copy 1;
- `bootcount` and `upgrade_available` must be 0 or 1, `mender_boot_part` one
  of the slots; otherwise the env is corrupt and GRUB boots slot A unless the
  env says B;
- no bootlimit: a pending update's first boot sets bootcount=1 (saved), and a
  boot that finds bootcount=1 still pending rolls back: the other slot,
  upgrade_available=0, bootcount=0 (saved).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.bootloaders import mender_vars
from harness.bootloaders.grub_script import (
    GRUB_VARS,
    CopyModel,
    FileModel,
    ScriptRun,
    parse_summary,
)
from harness.bootloaders.protocol import (
    LINE_START,
    BootEnv,
    BootMarkers,
    Expected,
    Transition,
    env_listing,
)
from harness.device.shell import ShellLike
from harness.envformat import GrubEnvCorrupt, encode_grubenv, parse_grubenv
from harness.errors import DeviceError, HarnessConfigError
from harness.images.diskimage import read_partition_files, write_partition_file
from harness.targets.target import EnvLocation

ENV_DIR = "grub-mender-grubenv"
FILES = tuple(f"{ENV_DIR}/mender_grubenv{n}/{kind}" for n in (1, 2) for kind in ("env", "lock"))

TABLE: tuple[Transition, ...] = (
    Transition("nothing pending: boot the same slot", False, False, False, False, False, 0),
    Transition(
        "update pending, first boot: bootcount=1 saved, try the new slot",
        True,
        False,
        False,
        True,
        False,
        1,
    ),
    Transition(
        "update pending, booted before without a commit: roll back, bootcount=0",
        True,
        True,
        True,
        True,
        True,
        1,
    ),
)


@dataclass(frozen=True)
class GrubCopy:
    """One env copy and its lock as they are on the disk."""

    number: int
    env_file: str
    lock_file: str
    vars: Mapping[str, str] | None  # None: no grubenv header (GRUB's load_env fails)
    editing: str | None  # the lock's `editing`; None when unset or unreadable
    lock_block: bool = True  # the lock holds a grubenv block (save_env can rewrite it)

    @property
    def clean(self) -> bool:
        return self.editing == "0"

    def describe(self) -> str:
        lock = "editing=0" if self.clean else f"editing={self.editing or '<unset>'} (torn)"
        body = "" if self.vars is not None else ", env has no grubenv header"
        return f"copy {self.number}: {self.env_file}, lock {lock}{body}"


@dataclass(frozen=True)
class GrubMenderState:
    """Both copies, and what GRUB makes of them at the start of a boot."""

    copies: tuple[GrubCopy, GrubCopy]
    used: int  # the copy whose variables GRUB boots with
    repairs: int | None  # the copy GRUB rewrites from the other one first
    why: str
    problems: tuple[str, ...] = field(default=())  # values GRUB rejects

    @property
    def vars(self) -> Mapping[str, str]:
        return self.copies[self.used - 1].vars or {}

    @property
    def valid(self) -> bool:
        return not self.problems


def read_state(blobs: Mapping[str, bytes], slots: tuple[int, ...] = (2, 3)) -> GrubMenderState:
    """What GRUB's Mender script reads from the four files (name → bytes, FILES' names)."""
    copies = tuple(_copy(n, blobs) for n in (1, 2))
    one, two = copies[0], copies[1]
    if not two.clean:
        used, repairs = 1, 2
        why = "copy 2's lock is not editing=0: GRUB restores copy 2 from copy 1 and reads copy 1"
    elif not one.clean:
        used, repairs = 2, 1
        why = "copy 1's lock is not editing=0: GRUB restores copy 1 from copy 2 and reads it"
    else:
        used, repairs, why = 1, None, "both locks are editing=0: GRUB reads copy 1"
    if repairs is not None and copies[repairs - 1].vars is None:
        why += (
            f"; copy {repairs} holds no grubenv block, which save_env cannot rewrite: "
            f"the restore fails, GRUB boots with copy {3 - repairs}'s values"
        )
    env = copies[used - 1].vars or {}
    problems = _problems(env, tuple(str(s) for s in slots))
    return GrubMenderState((one, two), used, repairs, why, tuple(problems))


def _copy(number: int, blobs: Mapping[str, bytes]) -> GrubCopy:
    env_file, lock_file = (f"{ENV_DIR}/mender_grubenv{number}/{k}" for k in ("env", "lock"))
    lock = _vars(blobs[lock_file])
    editing = None if lock is None else lock.get("editing")
    return GrubCopy(number, env_file, lock_file, _vars(blobs[env_file]), editing, lock is not None)


def _vars(blob: bytes) -> Mapping[str, str] | None:
    try:
        return parse_grubenv(blob).vars
    except GrubEnvCorrupt:
        return None


def _copies_from(before: BootEnv) -> dict[int, CopyModel]:
    """The four files as env_from_image described them (a BootEnv without
    per-copy detail stands for two copies that both hold its variables)."""
    no_block = set(before.detail.get("no_block", "").split())
    copies = {}
    for n in (1, 2):
        env_file, lock_file = FILES[2 * n - 2], FILES[2 * n - 1]
        summary = before.detail.get(f"env{n}")
        env = parse_summary(summary) if summary is not None else dict(before.vars)
        editing = before.detail.get(f"lock{n}", "<unset>")
        lock = {} if editing == "<unset>" else {"editing": editing}
        copies[n] = CopyModel(
            FileModel(None if env_file in no_block else {k: env[k] for k in GRUB_VARS if k in env}),
            FileModel(None if lock_file in no_block else lock),
        )
    return copies


def _env_after(
    before: BootEnv, start: Mapping[str, str], run: ScriptRun
) -> tuple[dict[str, str], tuple[tuple[str, int], ...], tuple[str, None], frozenset[str] | None]:
    """(env after, saves, copy after, judged keys) for Expected.

    The copy read afterwards is the one read before (updated with what GRUB
    saved into it), or, when a repair or a failed save moved the reader to the
    other copy, that copy: then only GRUB's three variables are known, and
    judged. A copy without a block reads as no variables at all."""
    used_before = 2 if before.detail.get("copy") == FILES[2] else 1
    used = run.used
    model = run.copies[used].env.vars
    judged: frozenset[str] | None = None
    if model is None:
        after: dict[str, str] = {}
    elif used == used_before:
        after = {k: v for k, v in start.items() if k not in GRUB_VARS} | model
    else:
        after, judged = dict(model), frozenset(GRUB_VARS)
    saves = tuple((FILES[2 * n - 2], 0) for n in run.saved)
    return after, saves, (FILES[2 * used - 2], None), judged


def _problems(env: Mapping[str, str], slots: tuple[str, ...]) -> list[str]:
    """mender_check_grubenv_valid: the values GRUB rejects."""
    problems = []
    if env.get("mender_boot_part") not in slots:
        problems.append(f"mender_boot_part={env.get('mender_boot_part', '<unset>')} is no slot")
    for name in ("bootcount", "upgrade_available"):
        if env.get(name) not in ("0", "1"):
            problems.append(f"{name}={env.get(name, '<unset>')} is not 0 or 1")
    return problems


MARKERS = BootMarkers(
    # GRUB's serial terminal clears the screen (vt100 escapes) before the first line.
    banner=re.compile(LINE_START + rb"(?:\x1b\[[0-9;=?]*[A-Za-z])*GRUB \d+\.\d+\S* \(ab-harness"),
    decision=re.compile(
        LINE_START + rb"ab-boot: slot=(?P<slot>\w+) part=\S* bootcount=(?P<bootcount>\w*) "
        rb"upgrade_available=(?P<upgrade_available>\w*)(?=\s)"
    ),
    save=re.compile(
        LINE_START + rb"ab-boot: save_env \((?P<why>\w+)\) wrote (?P<file>\S+)(?=[\r\n])"
    ),
    no_kernel=re.compile(LINE_START + rb"ab-boot: kernel of slot (?P<slot>\w+) did not boot"),
    fatal=re.compile(LINE_START + rb"ab-(?:boot|initramfs): FATAL (?P<why>[^\r\n]*)"),
    # GRUB prints nothing of its own when it hands over to Linux (`boot` is
    # silent, and a quiet kernel too): on the reference image the decision
    # line, which follows every save_env, is where the env after is read.
    handoff=None,
)


@dataclass(frozen=True)
class GrubMenderEnv:
    """GRUB with Mender's two grubenv copies and their locks on the ESP."""

    location: EnvLocation
    name: str = "grub-mender"
    # No bootlimit variable: the second boot of an uncommitted slot rolls back.
    # Two grubenv copies, each with its lock, always.
    capabilities: frozenset[str] = frozenset({"env-redundant"})
    markers: BootMarkers = MARKERS

    @property
    def transitions(self) -> tuple[Transition, ...]:
        return TABLE

    @property
    def variables(self) -> tuple[str, ...]:
        return GRUB_VARS

    def mark_good(self, env: Mapping[str, str], slot: str) -> dict[str, str]:
        return mender_vars.commit(env)

    def rollback(
        self, env: Mapping[str, str], slot: str, slots: Mapping[str, int]
    ) -> dict[str, str]:
        return mender_vars.rollback(env, slot, slots, with_hex=False)

    def settled(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        return mender_vars.settled(env)

    def bootcount_after_rollback(self, bootlimit: int) -> int:
        return 0  # mender_load_env_with_rollback resets it

    def env_problems(self, env: Mapping[str, str]) -> list[str]:
        return []  # GRUB saves only its three variables; nothing derived to follow

    def state(self, disk: Path) -> GrubMenderState:
        """Both copies and locks, read from the disk image as GRUB will read them."""
        blobs = read_partition_files(disk, self.location.partition, FILES)
        return read_state(dict(zip(FILES, blobs, strict=True)))

    def env_from_image(self, disk: Path) -> BootEnv:
        """The env GRUB would boot with, and which copy and why (detail)."""
        state = self.state(disk)
        one, two = state.copies
        detail = {
            "copy": state.copies[state.used - 1].env_file,
            "lock1": one.editing or "<unset>",
            "lock2": two.editing or "<unset>",
            "why": state.why,
        }
        for copy in state.copies:  # both copies' contract variables, as evidence
            shown = copy.vars or {}
            detail[f"env{copy.number}"] = " ".join(
                f"{k}={shown.get(k, '<unset>')}" for k in GRUB_VARS
            )
        if state.problems:
            detail["invalid"] = "; ".join(state.problems)
        # Files GRUB's save_env cannot rewrite (no grubenv block in them).
        no_block = [c.env_file for c in state.copies if c.vars is None]
        no_block += [c.lock_file for c in state.copies if not c.lock_block]
        if no_block:
            detail["no_block"] = " ".join(no_block)
        where = f"{disk.name} p{self.location.partition}:{ENV_DIR}"
        return BootEnv(state.vars, f"host:{where}", detail)

    def predict(self, before: BootEnv, slots: Mapping[str, int]) -> tuple[Expected, dict[str, str]]:
        """Mender's GRUB script run on the files `before` describes (as
        env_from_image read them): its decision, the env files it reports
        writing, and the env a host reads from the disk afterwards."""
        start = dict(before.vars)
        a, b = str(slots["A"]), str(slots["B"])
        run = ScriptRun(_copies_from(before))
        run.restore()  # mender_check_and_restore_env + mender_load_env
        ram = run.ram
        if _problems(ram, (a, b)) and ram.get("mender_boot_part") != b:
            ram["mender_boot_part"] = a  # a corrupt env boots A unless it says B
        pending = ram.get("upgrade_available") == "1"
        rolls_back = pending and ram.get("bootcount") != "0"
        row = next(t for t in TABLE if t.pending == pending and t.rolls_back == rolls_back)
        if row.switches_slot:
            ram["mender_boot_part"] = a if ram.get("mender_boot_part") == b else b
        if row.clears_pending:
            ram["upgrade_available"] = "0"
        if row.stores_bootcount:
            ram["bootcount"] = "0" if row.rolls_back else "1"
        for _ in range(row.saves):
            run.save_env()
        count = ram.get("bootcount")
        expected = Expected(
            row,
            "B" if ram.get("mender_boot_part") == b else "A",
            int(count) if count and count.isdigit() else None,
            ram.get("upgrade_available") == "1",
            *_env_after(before, start, run),
            changes_disk=run.wrote,
        )
        return expected, start

    def slot_started(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        """The slot `mender_boot_part` names; GRUB boots A from an env that names
        neither slot (mender_check_grubenv_valid failing)."""
        return "B" if env.get("mender_boot_part") == str(slots["B"]) else "A"

    def saves_between(self, before: BootEnv, after: BootEnv) -> int | None:
        """grubenv has no counter: a save cannot be told from the files."""
        return None

    def corrupt_env_copy(self, disk: Path, which: str) -> dict[str, object]:
        """A torn write of the chosen copies, as a power cut in grub-editenv
        leaves one: its lock says editing=1 and its env lost its variables
        (header and padding only). Proof: the state read back shows GRUB
        turning away from them."""
        if which not in ("newest", "oldest", "all"):
            raise HarnessConfigError(
                f"no env copy '{which}'", "corrupt the 'newest', 'oldest' or 'all' copies"
            )
        before = self.state(disk)
        # Both copies hold the same after every complete save; "newest" is the
        # one GRUB reads (copy 1 unless it is torn), "oldest" the other.
        victims = {"newest": [before.used], "oldest": [3 - before.used], "all": [1, 2]}[which]
        for number in victims:
            copy = before.copies[number - 1]
            write_partition_file(disk, self.location.partition, copy.env_file, encode_grubenv({}))
            torn_lock = encode_grubenv({"editing": "1"})
            write_partition_file(disk, self.location.partition, copy.lock_file, torn_lock)
        after = self.state(disk)
        if which != "all" and after.used in victims:
            raise DeviceError(f"corrupting copies {victims} left GRUB reading one", "harness bug")
        return {
            "corrupted": [before.copies[n - 1].env_file for n in victims],
            "newest_before": before.copies[before.used - 1].env_file,
            "valid_after": [] if which == "all" else [after.copies[after.used - 1].env_file],
            "grub_after": after.why,
        }

    def env_from_device(self, shell: ShellLike) -> BootEnv:
        """Read the env on the device with the image's ab-env (the copy GRUB would use)."""
        fix = f"check that the ESP is mounted and holds {ENV_DIR}/"
        return env_listing(shell, "ab-env list", "device:ab-env", fix)
