"""Replay a field case: boot a fresh VM in the captured state and say, boot by
boot, what the bootloader does next and whether the contract allows it.

`NextBoot` is what one boot did, in the terms two devices can be compared
in (the bootloader's decision, the contract row it followed, its saves, how
the boot ended): the original device's next boots and the replay's must be
the same list. Each boot is judged by the oracle (the bootloader object's
`predict()` from the env the boot began with); a violation is reported, not
raised, so a replay of a broken device still prints all it did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.bootloaders import Bootloader
from harness.device.bootrecord import BootRecord
from harness.device.live import live_target
from harness.errors import DeviceError
from harness.fieldcase.bundle import Bundle
from harness.fieldcase.rebuild import RebuiltDisk, rebuild
from harness.fieldcase.store import PayloadStore
from harness.images import ImageSet
from harness.judge.oracle import judge_boot
from harness.targets.target import TargetSpec


@dataclass(frozen=True)
class NextBoot:
    """One boot as the bootloader and the device lived it (no timings)."""

    slot: str | None
    bootcount: int | None
    upgrade_available: bool | None
    transition: str | None  # the contract row it followed (None: cut before its decision)
    saves: tuple[tuple[str, int], ...]
    reached_shell: bool
    running_slot: str | None
    version: str | None
    failure: str | None

    @classmethod
    def of(cls, boot: BootRecord, bootloader: Bootloader, slots: Mapping[str, int]) -> NextBoot:
        row = None
        if boot.env_before is not None and boot.bootloader_slot is not None:
            row = bootloader.predict(boot.env_before, slots)[0].transition.name
        return cls(
            boot.bootloader_slot,
            boot.bootcount,
            boot.upgrade_available,
            row,
            tuple((s.file, s.flags) for s in boot.saves),
            boot.ready,
            boot.running_slot,
            boot.version,
            boot.failure,
        )

    def describe(self) -> str:
        pending = "?" if self.upgrade_available is None else int(self.upgrade_available)
        saves = ", ".join(f"{f} 0x{fl:x}" for f, fl in self.saves) or "none"
        end = (
            f"reached a shell on slot {self.running_slot}, version {self.version}"
            if self.reached_shell
            else f"did not reach a shell: {self.failure}"
        )
        return (
            f"slot {self.slot}, bootcount={self.bootcount}, upgrade_available={pending} "
            f"[{self.transition or 'no decision seen'}]; saves: {saves}; {end}"
        )


def differences(original: Sequence[NextBoot], replayed: Sequence[NextBoot]) -> list[str]:
    """Where a replay's boots differ from the original device's, boot by boot.

    What one side could not observe is not compared: a board has no host view
    of its disk, so its boots carry no contract row (`transition` None)."""
    out = []
    if len(original) != len(replayed):
        out.append(f"the original made {len(original)} boots, the replay {len(replayed)}")
    for n, (a, b) in enumerate(zip(original, replayed, strict=False), start=1):
        for name in NextBoot.__dataclass_fields__:
            mine, theirs = getattr(a, name), getattr(b, name)
            if name == "transition" and None in (mine, theirs):
                continue
            if mine != theirs:
                out.append(f"boot {n}: {name} was {mine!r} on the device, {theirs!r} in the replay")
    return out


@dataclass(frozen=True)
class JudgedBoot:
    boot: NextBoot
    violation: str | None  # the oracle's words, None when the boot kept the contract
    unjudged: str | None = None  # why the oracle could not judge it, if it could not


@dataclass(frozen=True)
class ReplayResult:
    """What the replayed device did, boot by boot, and the disk it started from."""

    bundle: Bundle
    disk: RebuiltDisk
    boots: tuple[JudgedBoot, ...]
    stopped: str | None = None  # why the replay stopped early (a hang, no shell in max_boots)

    @property
    def transitions(self) -> tuple[NextBoot, ...]:
        return tuple(b.boot for b in self.boots)

    @property
    def kept_contract(self) -> bool:
        return all(b.violation is None for b in self.boots)

    def lines(self) -> list[str]:
        """The replay for a person: the starting state, then one line per boot."""
        env = self.disk.env
        start = " ".join(
            f"{k}={env.vars[k]}"
            for k in ("mender_boot_part", "upgrade_available", "bootcount", "bootlimit")
            if k in env.vars
        )
        out = [self.bundle.describe()]
        out += [f"  note: {n}" for n in self.bundle.notes]
        out += [f"  slot {n}: {src}" for n, src in sorted(self.disk.slots_from.items())]
        out.append(
            f"  env on the disk: {start or '(no valid copy)'} (from {env.detail.get('copy')})"
        )
        for n, judged in enumerate(self.boots, start=1):
            verdict = "kept the contract" if judged.violation is None else "BROKE THE CONTRACT"
            if judged.unjudged is not None:
                verdict = f"COULD NOT BE JUDGED ({judged.unjudged})"
            out.append(f"boot {n}: {judged.boot.describe()} — oracle: {verdict}")
            if judged.violation is not None:
                out += [f"    {line}" for line in judged.violation.splitlines()]
        if self.stopped is not None:
            out.append(f"stopped: {self.stopped}")
        return out


def judged(
    boots: Sequence[BootRecord], bootloader: Bootloader, slots: Mapping[str, int]
) -> tuple[JudgedBoot, ...]:
    """Each boot as a NextBoot, with the oracle's verdict on it."""
    out = []
    for boot in boots:
        judgement = judge_boot(boot, slots, bootloader)
        violation = str(judgement.violation) if judgement.violation is not None else None
        observed = replace(boot, judgement=judgement)  # the decision as observed
        unjudged = judgement.reason if judgement.verdict == "unjudged" else None
        out.append(JudgedBoot(NextBoot.of(observed, bootloader, slots), violation, unjudged))
    return tuple(out)


def replay(
    bundle: Bundle,
    spec: TargetSpec,
    image: ImageSet,
    bootloader: Bootloader,
    workdir: Path,
    *,
    store: PayloadStore | None = None,
    max_boots: int = 4,
    reboots: int = 0,
    accel: str | None = None,
    boot_timeout_s: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Rebuild the captured state on a copy of the target's disk, power it on,
    follow the boots until a shell (at most `max_boots`), then reboot
    `reboots` more times; every boot judged by the oracle."""
    store = store or PayloadStore.of_image(image, spec.slots["A"])
    disk = rebuild(bundle, spec, image, bootloader, store, workdir / "replay-disk.img")
    if progress is not None:
        progress(
            f"replay disk {disk.path}: "
            + ", ".join(f"{n} = {s}" for n, s in disk.slots_from.items())
        )
    with live_target(
        spec,
        image,
        workdir / "target",
        bootloader,
        accel=accel,
        boot_timeout_s=boot_timeout_s,
        judge=False,
        disk=disk.path,
    ) as live:
        stopped = None
        try:
            live.strategy.power_on(max_boots)
            for _ in range(reboots):
                live.strategy.reboot(max_boots)
        except DeviceError as err:  # what the device did is the answer, whatever it was
            stopped = " ".join(err.cause.split())[:300]
        finally:
            (workdir / "serial.log").write_bytes(live.recorder.raw(0, live.recorder.size))
        records = list(live.watcher.history)
    return ReplayResult(bundle, disk, judged(records, bootloader, spec.slots), stopped)
