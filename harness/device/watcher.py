"""Following boots on a console: every boot from bootloader banner to a shell,
or to why it never got there.

`BootWatcher` reads the console until the device says it is ready,
recording each boot it passes on the way (an update that fails its health
check reboots by itself; a rollback is several boots in a row). Where the
machine holds itself in reset between boots (QEMU), it reads the disk at
that moment and again right after the bootloader's decision, so the oracle
can judge each boot from the exact env it started with.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pexpect import TIMEOUT

from harness.bootloaders import LINE_START, BootEnv, BootMarkers
from harness.device.bootrecord import BootJudge, BootProbe, BootRecord, EnvSave, ResetGate
from harness.device.pace import BootDeadline, Pace
from harness.errors import DeviceError
from harness.images.userreleases import Device
from harness.judge.judgement import Decision, Judgement

log = logging.getLogger(__name__)

# The reference image's health verdict; a target's own is `device.health_pass/_fail`.
HEALTH = re.compile(LINE_START + (Device().health_pattern() or "").encode())
PANIC = re.compile(LINE_START + rb"(?:\[[ \d.]+\] )?Kernel panic - not syncing(?P<why>[^\r\n]*)")


# How often the console wait looks whether the machine is held in reset.
_GATE_POLL_S = 0.1


@dataclass
class BootWatcher:
    """Follows boots on a console until the ready marker appears."""

    console: Any  # labgrid ConsoleProtocol: expect(patterns, timeout) -> (i, before, match, after)
    markers: BootMarkers
    ready: re.Pattern[bytes]
    # The health check's verdict on the console (groups health_pass / health_fail);
    # None: the device prints none.
    health: re.Pattern[bytes] | None = HEALTH
    tail: Callable[[], str] = lambda: ""
    history: list[BootRecord] = field(default_factory=list)
    gate: ResetGate | None = None
    probe: BootProbe | None = None
    judge: BootJudge | None = None
    explain: Callable[[], str | None] | None = None  # why the machine stalled, if it knows
    # Set when the harness cut a board's power: its console stays open (a lab's
    # serial server outlives the board), so only the harness knows nothing will boot.
    poll_power: bool = False
    # A board's env read over its shell just before a reboot (nothing writes it
    # between `sync; reboot -f` and the bootloader): the env the next boot starts
    # from, where no host can read the disk between two boots.
    shell_env: Callable[[], BootEnv | None] | None = None
    pace: Pace = field(default_factory=Pace.fixed)  # deadlines: floors, or this host's pace
    _unpowered: bool = field(default=False, init=False)
    _env_before: BootEnv | None = field(default=None, init=False)
    _reset_by: str | None = field(default=None, init=False)
    # A boot whose banner a previous wait already consumed (watch_boots).
    _carry: BootRecord | None = field(default=None, init=False)

    def power_on_env(self) -> None:
        """Record the env on the disk before power is switched on."""
        self._unpowered = False
        if self.poll_power:
            self._forget_console()
        self._env_before = self._read("before boot", pause=False)
        self._power_cut_ends_the_last_boot()

    def _power_cut_ends_the_last_boot(self) -> None:
        """The boot the power went off in (a cut, or the harness powering off a
        hung device) ended there: what it wrote is on the disk now, if it never
        reached Linux, and the next wait must not go on from it."""
        if self._carry is not None:
            # Not followed past its banner: whether Linux ran (and wrote) is unknown.
            carry, self._carry = self._carry, None
            self.history[carry.index - 1] = replace(carry, failure=carry.failure or "power cut")
            if self.judge is not None:
                self._not_followed(carry, "the power went off during this boot")
            return
        if not self.history:
            return
        last = self.history[-1]
        if last.ready or last.judgement is not None:
            return
        if last.failure is None:
            last = replace(last, failure="power cut")
        self.history[-1] = self._fill_after(last, self._env_before, "power-on")

    def _fill_after(self, boot: BootRecord, env: BootEnv | None, at: str) -> BootRecord:
        """A boot that never reached Linux wrote nothing after its bootloader:
        the env at the next reset (or power-on) is its env after."""
        if boot.env_after is not None or boot.reached_linux or env is None:
            return boot
        return replace(boot, env_after=env, env_after_at=at)

    def settle(self) -> list[Judgement]:
        """Judge every boot not judged yet (at the end of a test): a boot still
        waiting for the env after it gets the disk as it is now; the boot the
        test ended in is counted as not judged, with that reason. Never
        raises: the caller decides what a violation found now means."""
        if self.judge is None or not self.history:
            return []
        last = self.history[-1]
        if last.judgement is None and self._awaits_env_after(last):
            env = self._read("at the end of the test", pause=True)
            self.history[-1] = self._fill_after(last, env, "end")
        judgements = []
        if self._carry is not None:
            carry, self._carry = self._carry, None
            judgements.append(self._not_followed(carry, "the test ended while this boot ran"))
        return judgements + self._judge_ended(final=True)

    def _not_followed(self, boot: BootRecord, why: str) -> Judgement:
        """A boot whose banner a wait consumed and no wait followed: counted, unjudged."""
        judgement = Judgement(
            boot.index, "unjudged", f"{why}: nothing after its banner was followed"
        )
        self.history[boot.index - 1] = replace(self.history[boot.index - 1], judgement=judgement)
        return judgement

    def _awaits_env_after(self, boot: BootRecord) -> bool:
        """Its env after will be read at the next reset or power-on."""
        return boot.env_after is None and self.probe is not None and not boot.reached_linux

    def _judge_ended(self, *, final: bool = False) -> list[Judgement]:
        """Judge the boots that ended and are not judged yet; the judgement goes
        onto each record in `history`."""
        if self.judge is None:
            return []
        carry = self._carry.index if self._carry is not None else None
        judgements = []
        for boot in list(self.history):
            if boot.judgement is not None or boot.index == carry:
                continue
            if not final and self._awaits_env_after(boot):
                continue
            following = self.history[boot.index] if boot.index < len(self.history) else None
            judgement = self.judge.judge(boot, following)
            self.history[boot.index - 1] = replace(boot, judgement=judgement)
            judgements.append(judgement)
        return judgements

    def _forget_console(self) -> None:
        """Drop console bytes the harness read but no wait used: a board's console
        outlives its power, so what the last boot printed between a cut's trigger
        and the outlet going off (an `ab-init: ready`, say) would otherwise be
        taken for the next boot's. pexpect hands its whole buffer to `before`
        when a TIMEOUT it was told to expect happens."""
        try:
            self.console.expect([TIMEOUT], timeout=0.05)
        except Exception as err:  # a console that cannot be read now has nothing stale
            log.debug("forgetting the console's stale input: %s", err)

    def before_reboot(self) -> None:
        """Called at the shell before a reboot: with no disk probe, the env the
        next boot starts from is read over the shell (`shell_env`)."""
        if self.probe is None and self.shell_env is not None:
            self._env_before = self.shell_env()

    def power_lost(self) -> None:
        """The harness switched the power off: a wait in progress ends with a
        DeviceError instead of running into its deadline (see `poll_power`)."""
        self._unpowered = True

    def wait_ready(self, *, per_boot_s: float, max_boots: int) -> list[BootRecord]:
        """Return the boots seen until the device is ready, judged by `judge`.

        Boots that do not reach a shell are recorded with their `failure`.
        Raises DeviceError when a boot exceeds per_boot_s, when more than
        max_boots boots happen, or when the bootloader gives up; the message
        carries the last serial lines.
        """
        return self._judged(per_boot_s, max_boots, stop_after=None)

    def watch_boots(self, count: int, *, per_boot_s: float) -> list[BootRecord]:
        """Return the next `count` boots, whether or not they reach a shell.

        Returns when boot `count` + 1 begins or boot `count` is ready; the
        device keeps running (a boot loop goes on) and the boots are judged.
        """
        return self._judged(per_boot_s, count, stop_after=count)

    def _judged(
        self, per_boot_s: float, max_boots: int, stop_after: int | None
    ) -> list[BootRecord]:
        seen: list[BootRecord] = []
        try:
            return self._follow(seen, per_boot_s, max_boots, stop_after)
        finally:
            judgements = self._judge_ended()
            # The caller gets the records with their judgements (and the
            # decisions observed), the same objects `history` holds.
            seen[:] = [self.history[b.index - 1] for b in seen]
            if self.judge is not None:
                self.judge.enforce(judgements)

    def _patterns(self) -> list[re.Pattern[bytes]]:
        optional = (
            self.markers.decision,
            self.markers.handoff,
            self.markers.save,
            self.markers.no_kernel,
            self.markers.fatal,
        )
        return [self.markers.banner, self.ready, PANIC] + [
            p for p in (self.health, *optional) if p is not None
        ]

    def _follow(
        self, seen: list[BootRecord], per_boot_s: float, max_boots: int, stop_after: int | None
    ) -> list[BootRecord]:
        patterns = self._patterns()
        current, self._carry = self._carry, None
        deadline = self.pace.boot(per_boot_s)
        while True:
            remaining = deadline.remaining()
            if remaining <= 0:
                raise self._hang(current, deadline)
            polled = self.gate is not None or self.poll_power
            wait = min(remaining, _GATE_POLL_S) if polled else remaining
            try:
                index, _before, match, _after = self.console.expect(patterns, timeout=wait)
            except TIMEOUT:
                if self._unpowered:
                    if current is not None:
                        self._finish(current, "power cut")
                    raise DeviceError(
                        "the device's power was switched off while the harness waited for it",
                        "power it on again (booted.power_on())",
                    ) from None
                if self.gate is not None and self.gate.held_in_reset():
                    # One boot ended: the disk now holds what the next one starts from.
                    self._env_before = self._read("at reset", pause=False)
                    self._reset_by = self.gate.reset_cause()
                    if current is not None:
                        current = self._fill_after(current, self._env_before, "reset")
                        self.history[current.index - 1] = current
                    try:
                        self.gate.release_reset()
                    except DeviceError as err:  # no answer in time: still held, retried
                        log.warning("releasing the reset: %s", err.cause)
                continue
            pattern = patterns[index]
            if pattern is self.markers.banner:
                if current is not None:
                    by, self._reset_by = self._reset_by, None
                    why = "reset before reaching a shell"
                    if by == "watchdog":
                        why = "reset by the watchdog before reaching a shell"
                    seen.append(self._finish(replace(current, reset_by=by), why))
                if stop_after is not None and len(seen) >= stop_after:
                    self._carry = self._start_boot()  # later waits go on from this boot
                    return seen
                if len(seen) >= max_boots:
                    raise DeviceError(
                        f"device booted {len(seen) + 1} times without becoming ready "
                        f"(allowed {max_boots}); slots: {[b.bootloader_slot for b in seen]}"
                        + self._tail_text(),
                        "see the per-boot serial logs: the device is in a boot loop",
                    )
                current = self._start_boot()
                deadline = self.pace.boot(per_boot_s)
                continue
            if current is None:  # output before any banner: the first boot began earlier
                current = self._start_boot()
            current = self._update(current, pattern, match.groupdict())
            # Kept at once: a boot cut short (a power cut raises out of this
            # loop) still shows what it printed, e.g. the bootloader's decision.
            self.history[current.index - 1] = current
            if current.ready:
                self.pace.ready(deadline)
                seen.append(self._finish(current, None))
                return seen

    def _update(
        self, current: BootRecord, pattern: re.Pattern[bytes], groups: dict[str, bytes]
    ) -> BootRecord:
        """The record after one matched console line."""
        if pattern is self.ready:
            return replace(
                current,
                ready=True,
                ready_at=time.monotonic(),
                running_slot=_text(groups.get("slot")),
                version=_text(groups.get("version")),
            )
        if pattern is self.health:
            passed = groups.get("health_pass") is not None
            return replace(
                current,
                health="pass" if passed else "fail",
                failure=current.failure or (None if passed else "health check failed"),
            )
        if pattern is PANIC:
            why = (_text(groups.get("why")) or "").strip(" :")
            return replace(current, panicked=True, failure=f"kernel panic: {why}".strip(" :"))
        if pattern is self.markers.save:
            # A format without a flags byte (GRUB's grubenv) reports none: 0.
            flags = groups.get("flags")
            save = EnvSave(
                _text(groups["why"]) or "", _text(groups["file"]) or "", int(flags or b"0", 16)
            )
            return replace(current, saves=(*current.saves, save))
        if pattern is self.markers.no_kernel:
            slot = _text(groups.get("slot"))
            # A stock bootloader's own line names no slot: the oracle's decision does.
            which = f"slot {slot}'s kernel" if slot else "the kernel of the slot it chose"
            return replace(current, failure=f"the bootloader could not start {which}")
        if pattern is self.markers.fatal:
            self._finish(current, "bootloader gave up")
            raise DeviceError(
                f"boot #{current.index}: the bootloader gave up: {_text(groups['why'])}"
                + self._tail_text(),
                "the device cannot boot without help (bricked); see this boot's serial log",
            )
        if pattern is self.markers.handoff:
            return self._read_after(replace(current, handoff=True), "handoff")
        # The image's decision line (a cross-check): it too follows every save.
        bootcount = _text(groups.get("bootcount")) or ""
        line = Decision(
            _text(groups.get("slot")),
            int(bootcount) if bootcount.isdigit() else None,
            groups.get("upgrade_available") == b"1",
        )
        return self._read_after(replace(current, line=line), "decision")

    def _read_after(self, current: BootRecord, at: str) -> BootRecord:
        """The disk now holds every save the bootloader made: read it once."""
        if current.env_after is not None:
            return current
        env = self._read(f"boot #{current.index} after bootloader", pause=True)
        return replace(current, env_after=env, env_after_at=at if env is not None else None)

    def _read(self, label: str, *, pause: bool) -> BootEnv | None:
        return self.probe.env_now(label, pause=pause) if self.probe is not None else None

    def _start_boot(self) -> BootRecord:
        index = len(self.history) + 1
        log.info("boot #%d started", index)
        record = BootRecord(index=index, started_at=time.monotonic(), env_before=self._env_before)
        self._env_before = None
        self.history.append(record)
        return record

    def _finish(self, record: BootRecord, failure: str | None) -> BootRecord:
        if not record.ready and record.failure is None:
            record = replace(record, failure=failure)
        self.history[record.index - 1] = record
        log.info(
            "boot #%d: bootloader chose %s (bootcount=%s), ran %s v%s, health=%s, ready=%s%s",
            record.index,
            record.bootloader_slot,
            record.bootcount,
            record.running_slot,
            record.version,
            record.health,
            record.ready,
            f" ({record.failure})" if record.failure else "",
        )
        return record

    def _hang(self, current: BootRecord | None, deadline: BootDeadline) -> DeviceError:
        where = f"boot #{current.index}" if current else f"boot #{len(self.history) + 1}"
        if current is not None:
            self._finish(current, f"hung: not ready within {deadline.limit()}")
        else:
            where += " (no bootloader banner)"
        if cause := self.explain() if self.explain is not None else None:
            return DeviceError(f"{where} stalled: {cause}" + self._tail_text())
        return DeviceError(
            f"device hung: {where} {deadline.describe()}" + self._tail_text(),
            "see the boot's serial log; raise boot_timeout_s only if it is just slow",
        )

    def _tail_text(self) -> str:
        tail = self.tail().strip()
        return f"\nlast serial lines:\n{tail}" if tail else ""


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode(errors="replace")
