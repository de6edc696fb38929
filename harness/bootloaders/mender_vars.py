"""What Mender's client writes to its variables, the same on U-Boot and GRUB:
a commit clears `upgrade_available` (the trial boot's `bootcount` stays); a rollback names the
other slot's partition with nothing pending; pending is `upgrade_available=1`."""

from __future__ import annotations

from collections.abc import Mapping

from harness.bootloaders.protocol import BootEnv


def commit(env: Mapping[str, str]) -> dict[str, str]:
    """`mender commit` (and the reference agent's): upgrade_available=0 alone, as
    seen on the device; the trial boot's bootcount stays (docs/findings.md)."""
    return {**env, "upgrade_available": "0"}


def rollback(
    env: Mapping[str, str], slot: str, slots: Mapping[str, int], *, with_hex: bool
) -> dict[str, str]:
    """The client's rollback from `slot`: the other slot's partition (and its
    hex twin, where U-Boot's chain reads one), nothing pending."""
    part = next(n for name, n in slots.items() if name != slot)
    written = {"mender_boot_part": str(part), "upgrade_available": "0"}
    if with_hex:
        written["mender_boot_part_hex"] = f"{part:x}"
    return {**env, **written}


def settled(env: BootEnv) -> str | None:
    """Pending while upgrade_available=1."""
    return "upgrade_available=1: an update is pending" if env.upgrade_available else None
