"""What an update attempt came to, as a value to assert on.

A rollback is an expected result, not an exception: `UpdateOutcome`
states which slots the bootloader chose, what the counters said, where
the device ended up and what the update client believes, and the scenario
asserts on those fields. The choices and counts are the oracle's
observations of each boot (the slot Linux runs, the env after the
bootloader's saves), so they read the same on a stock image that prints no
decision line as on the reference one. With the client's belief given
(`observe.client()`), "committed" and "rolled back" also require the client
to agree: its installed release is the running slot's, it waits for a
commit exactly when the env does, and its next command runs clean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.boot import BootRecord
from harness.bootloaders import BootEnv
from harness.clients import ClientCheck


@dataclass(frozen=True)
class UpdateOutcome:
    """The boots after an install, and the env the device was left with."""

    start_slot: str
    boots: tuple[BootRecord, ...]
    env: BootEnv
    client: ClientCheck | None = None

    @property
    def client_disagreement(self) -> str | None:
        """Why the client's belief disagrees with the slot and the env ("client: …"),
        or None when it agrees or was not read."""
        if self.client is None:
            return None
        return self.client.disagreement(self.env.pending)

    @property
    def client_agrees(self) -> bool:
        return self.client_disagreement is None

    @property
    def bootloader_slots(self) -> list[str | None]:
        """The slot the bootloader chose at each boot, in order."""
        return [b.bootloader_slot for b in self.boots]

    @property
    def bootcounts(self) -> list[int | None]:
        """The bootcount each boot left (None where it saved none: a count kept in RAM)."""
        return [b.bootcount for b in self.boots]

    @property
    def health(self) -> list[str | None]:
        return [b.health for b in self.boots]

    @property
    def final_slot(self) -> str | None:
        return self.boots[-1].running_slot if self.boots else None

    @property
    def rolled_back(self) -> bool:
        """Left the start slot, then came back to it with nothing pending (the
        contract's `settled`, where the env was read under it) and,
        where the client was read, a client that agrees."""
        tried_other = any(b.bootloader_slot not in (None, self.start_slot) for b in self.boots)
        back = self.final_slot == self.start_slot and not self.env.pending
        return tried_other and back and self.client_agrees

    @property
    def committed(self) -> bool:
        """Runs the other slot with the update committed (nothing pending) and,
        where the client was read, a client that agrees."""
        moved = self.final_slot not in (None, self.start_slot)
        return moved and not self.env.pending and self.client_agrees

    def describe(self) -> str:
        steps = ", ".join(
            f"#{b.index}:{b.bootloader_slot}(bc={b.bootcount},health={b.health})"
            for b in self.boots
        )
        text = (
            f"start {self.start_slot} → {steps} → running {self.final_slot}; env "
            f"upgrade_available={self.env.get('upgrade_available')} "
            f"bootcount={self.env.get('bootcount')}"
        )
        if self.client is not None:
            text += f"; {self.client.belief.describe()}"
            text += f"; {self.client_disagreement}" if self.client_disagreement else ""
        return text


def outcome(
    start_slot: str, boots: Sequence[BootRecord], env: BootEnv, client: ClientCheck | None = None
) -> UpdateOutcome:
    """Bundle the boots since an install with the env read afterwards and, read
    after the env, what the update client believes (`observe.client()`)."""
    return UpdateOutcome(start_slot, tuple(boots), env, client)
