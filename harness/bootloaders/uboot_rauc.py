"""RAUC's U-Boot contract: `BOOT_ORDER` and `BOOT_<slot>_LEFT`, env at raw offsets.

Facts it rests on, restated (RAUC's documentation, docs/integration.rst
"U-Boot" and docs/reference.rst `boot-attempts`/`boot-attempts-primary`; the
example boot script it points to, contrib/uboot.sh; RAUC's U-Boot backend,
which writes the env with fw_setenv):
- `BOOT_ORDER` lists the slots' bootnames in the order they are tried;
  `BOOT_<bootname>_LEFT` is how many boot attempts a slot has left, written
  by RAUC in hex (`%x`) and read by the script as hex (`test 0x${..} -gt 0`,
  `setexpr`).
- Every boot: the script fills in an unset or empty `BOOT_ORDER` ("A B") and
  `BOOT_x_LEFT` (3), takes the first slot of `BOOT_ORDER` with tries left,
  spends one of them, saves the env and boots that slot. A slot with 0 left
  is skipped. With no slot left it sets every slot's tries back to 3, saves
  and resets the board: no slot starts.
- `rauc status mark-good` sets the booted slot's `LEFT` back to
  `boot-attempts` (default 3); `mark-bad` drops the slot from `BOOT_ORDER`
  and sets its `LEFT` to 0; an install puts the new slot first in
  `BOOT_ORDER` with `boot-attempts-primary` tries. RAUC calls a slot good when
  `BOOT_ORDER` lists it with tries left.
So every boot is a trial, not only an update's first: a slot that is not
marked good again after each boot falls back once its tries are spent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from harness.bootloaders import uboot_env
from harness.bootloaders.protocol import BootEnv, BootMarkers, Expected, Transition
from harness.bootloaders.uboot_env import MARKERS, OffsetsStorage, require_offsets
from harness.targets.target import EnvLocation

ORDER = "BOOT_ORDER"
DEFAULT_ATTEMPTS = 3

# Each boot saves once: (pending, rolls back, switches slot, stores, clears, saves).
_BOOTS = Transition(
    "first slot of BOOT_ORDER has tries left: spend one, boot it", *(False,) * 3, True, False, 1
)
_FALLS_BACK = Transition(
    "first slot of BOOT_ORDER has no tries left: spend one of the next slot's, boot it",
    *(True,) * 4,
    False,
    1,
)
_NONE_LEFT = Transition(
    "no slot has tries left: reset every slot's tries, reset the board",
    True,
    True,
    False,
    True,
    False,
    1,
)
TABLE: tuple[Transition, ...] = (_BOOTS, _FALLS_BACK, _NONE_LEFT)


def left_var(slot: str) -> str:
    return f"BOOT_{slot}_LEFT"


def tries(raw: str | None) -> int:
    """A `LEFT` value as the script's `test 0x${..}` reads it: the leading hex
    digits, anything else 0."""
    digits = ""
    for char in (raw or "").strip().lower():
        if char not in "0123456789abcdef":
            break
        digits += char
    return int(digits, 16) if digits else 0


def order_of(env: Mapping[str, str]) -> list[str]:
    return (env.get(ORDER) or "").split()


def pick(env: Mapping[str, str], slots: Mapping[str, int]) -> str | None:
    """The slot a boot starts from `env` (after the script's defaults): the
    first of `BOOT_ORDER` with tries left; None with no slot left."""
    return next((s for s in order_of(env) if s in slots and tries(env.get(left_var(s)))), None)


@dataclass(frozen=True)
class UBootRaucEnv(OffsetsStorage):
    """U-Boot running RAUC's boot script, its env at raw offsets of the disk.

    `attempts` is system.conf's `boot-attempts` and the script's reset value
    (they must agree, RAUC's reference says so)."""

    location: EnvLocation
    name: str = "uboot-rauc"
    markers: BootMarkers = MARKERS
    attempts: int = DEFAULT_ATTEMPTS
    bootnames: tuple[str, ...] = ("A", "B")

    def __post_init__(self) -> None:
        require_offsets(self.location, self.name)

    @property
    def capabilities(self) -> frozenset[str]:
        # Every boot saves, so a board booting its default env saves it.
        return uboot_env.capabilities(self.location, "env-default-saved")

    @property
    def transitions(self) -> tuple[Transition, ...]:
        return TABLE

    @property
    def variables(self) -> tuple[str, ...]:
        return (ORDER, *(left_var(s) for s in self.bootnames))

    def with_defaults(self, env: Mapping[str, str], slots: Mapping[str, int]) -> dict[str, str]:
        """The env after the script's first lines: unset or empty variables filled."""
        ram = dict(env)
        if not ram.get(ORDER):
            ram[ORDER] = " ".join(slots)
        for slot in slots:
            if not ram.get(left_var(slot)):
                ram[left_var(slot)] = str(self.attempts)
        return ram

    def predict(self, before: BootEnv, slots: Mapping[str, int]) -> tuple[Expected, dict[str, str]]:
        """The script run on `before` (on U-Boot's default env, holding none of
        RAUC's variables, when no copy is valid)."""
        start = dict(before.vars) if before.detail.get("copy") != "none" else {}
        ram = self.with_defaults(start, slots)
        chosen = pick(ram, slots)
        first = next((s for s in order_of(ram) if s in slots), None)
        if chosen is None:
            row, slot = _NONE_LEFT, "none"
            ram.update({left_var(s): str(self.attempts) for s in slots})
        else:
            row, slot = (_BOOTS if chosen == first else _FALLS_BACK), chosen
            ram[left_var(chosen)] = f"{tries(ram[left_var(chosen)]) - 1:x}"
        copies = self.location.copy_names
        plan = uboot_env.save_plan(before, 1, copies, first_save_copy=1)
        left = ", ".join(f"{left_var(s)}={ram[left_var(s)]}" for s in slots)
        expected = Expected(
            row,
            slot,
            None,
            self.settled(BootEnv(ram, "predicted"), slots) is not None,
            ram,
            plan or None,
            (plan[-1][0], str(plan[-1][1])) if plan else None,
            frozenset({ORDER, *(left_var(s) for s in slots)}),
            steps=(ram,),
            state=f"{ORDER}={ram[ORDER]} {left}",
        )
        return expected, start

    def slot_started(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        """None: the env after a boot does not name the slot it started (a slot
        whose last try was spent reads as one with none left); the spent try,
        which the oracle judges in the env, does."""
        return None

    def saves_between(self, before: BootEnv, after: BootEnv) -> int | None:
        return uboot_env.saves_between(before, after, self.location.copy_names)

    def env_problems(self, env: Mapping[str, str]) -> list[str]:
        """An unset or empty BOOT_ORDER, a bootname it lists with no tries
        variable, or a tries value that is not a hex count."""
        problems = []
        order = order_of(env)
        if not order:
            problems.append(f"{ORDER} is unset or empty: the script boots its default order")
        for slot in dict.fromkeys([*order, *self.bootnames]):
            raw = env.get(left_var(slot))
            if raw is None:
                problems.append(f"{left_var(slot)} is unset")
            elif tries(raw) == 0 and raw.strip() not in ("0", "0x0"):
                problems.append(f"{left_var(slot)}={raw} is not a hex count: read as 0")
        return problems

    def mark_good(self, env: Mapping[str, str], slot: str) -> dict[str, str]:
        """`rauc status mark-good`: the slot's tries back to `boot-attempts`."""
        return {**env, left_var(slot): f"{self.attempts:x}"}

    def rollback(
        self, env: Mapping[str, str], slot: str, slots: Mapping[str, int]
    ) -> dict[str, str]:
        """`rauc status mark-bad`: the slot leaves BOOT_ORDER, its tries 0."""
        order = " ".join(s for s in order_of(env) if s != slot)
        return {**env, ORDER: order, left_var(slot): "0"}

    def settled(self, env: BootEnv, slots: Mapping[str, int]) -> str | None:
        """Settled: the slot the next boot starts was marked good after its
        last boot (its tries are full)."""
        ram = self.with_defaults(env.vars, slots)
        chosen = pick(ram, slots)
        if chosen is None:
            return "no slot of BOOT_ORDER has tries left: the next boot resets them all"
        left = tries(ram[left_var(chosen)])
        if left < self.attempts:
            return (
                f"{left_var(chosen)}={left:x}: slot {chosen} booted without a mark-good since; "
                f"{left} more such boots and BOOT_ORDER's next slot starts"
            )
        return None

    def bootcount_after_rollback(self, bootlimit: int) -> Literal[0]:
        return 0  # no bootcount in this contract: a scenario reading one reads 0
