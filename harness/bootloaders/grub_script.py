"""Mender's GRUB script (qemu-images/x86_64-grub/grub.cfg) run on a model of
the four env files, to say what one boot reads, decides and leaves on the disk.

Why a model of the files and not only of the variables: GRUB's `save_env`
cannot create, grow or reallocate a file. It reads the file it is told to
write, and rewrites that file's own sectors in place only if they already
hold a GRUB environment block (the header, GRUB's `grub_envblk_open`); any
other file (empty, truncated, headerless) makes it fail with "invalid
environment block" and the file stays as it was. Linux's `grub-editenv`
truncates a file and writes it anew, so a power cut inside it can leave
exactly such a file. Mender's script goes on after a failed `save_env`: the
restore of a torn copy still marks that copy's lock `editing=0`, and a
`load_env` of a file without a block leaves GRUB's variables as they were.
The model follows each of those steps; `harness.bootloaders.grub_mender`
turns its result into the oracle's `Expected`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# The variables GRUB loads and saves (mender_load_env / mender_save_env).
GRUB_VARS = ("bootcount", "mender_boot_part", "upgrade_available")


@dataclass
class FileModel:
    """One grubenv file as GRUB's commands see it: its variables, or None when
    it holds no environment block (then `load_env` and `save_env` fail)."""

    vars: dict[str, str] | None

    def load(self, ram: dict[str, str], names: tuple[str, ...]) -> None:
        """`load_env --file F NAMES`: only the listed names the file holds."""
        if self.vars is not None:
            ram.update({k: v for k, v in self.vars.items() if k in names})

    def save(self, ram: Mapping[str, str], names: tuple[str, ...]) -> bool:
        """`save_env --file F NAMES`: in place, into an existing block only;
        a name unset in GRUB is deleted from the block."""
        if self.vars is None:
            return False
        for name in names:
            if name in ram:
                self.vars[name] = ram[name]
            else:
                self.vars.pop(name, None)
        return True


@dataclass
class CopyModel:
    """One env copy: its env file and its lock file."""

    env: FileModel
    lock: FileModel

    @property
    def clean(self) -> bool:
        return self.lock.vars is not None and self.lock.vars.get("editing") == "0"

    def set_lock(self, editing: str) -> bool:
        return self.lock.save({"editing": editing}, ("editing",))


@dataclass
class ScriptRun:
    """What one run of the script did: GRUB's variables when it decided, the
    env files it reported writing (copy numbers, in order), the copy it
    restored first (if any), and whether it wrote anything at all."""

    copies: dict[int, CopyModel]
    ram: dict[str, str] = field(default_factory=dict)
    saved: list[int] = field(default_factory=list)
    restored: int | None = None
    wrote: bool = False

    @property
    def used(self) -> int:
        """The copy a host reader (and the next boot) takes the env from."""
        return 1 if not self.copies[2].clean or self.copies[1].clean else 2

    def restore(self) -> None:
        """mender_check_and_restore_env, then mender_load_env's load of copy 1."""
        torn = 2 if not self.copies[2].clean else 1 if not self.copies[1].clean else None
        if torn is not None:
            good = self.copies[3 - torn]
            good.env.load(self.ram, GRUB_VARS)
            if self.copies[torn].env.save(self.ram, GRUB_VARS):
                self.saved.append(torn)
            self.copies[torn].set_lock("0")
            self.restored, self.wrote = torn, True
        self.copies[1].env.load(self.ram, GRUB_VARS)

    def save_env(self) -> None:
        """mender_save_env: copy 2 then copy 1, each inside its lock."""
        for number in (2, 1):
            copy = self.copies[number]
            copy.set_lock("1")
            if copy.env.save(self.ram, GRUB_VARS):
                self.saved.append(number)
            copy.set_lock("0")
        self.wrote = True


def parse_summary(text: str) -> dict[str, str]:
    """The `k=v k=v` summary `GrubMenderEnv.env_from_image` keeps per copy
    (`<unset>` for a variable the copy does not hold)."""
    pairs = (item.split("=", 1) for item in text.split() if "=" in item)
    return {k: v for k, v in pairs if v != "<unset>"}
