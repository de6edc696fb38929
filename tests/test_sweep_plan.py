"""The quick sweep's plan spans the whole update: the install, the trial
boot's save, the commit and what follows it. Shown on a write log shaped
like a recorded update (written with the test's own dm-log-writes writer)."""

from __future__ import annotations

from pathlib import Path

from dmlog import LogWriter

from harness.faults.crashstate import ordered_state
from harness.faults.sweep_plan import QUICK_MAX_STATES, crash_points, states_for
from harness.faults.writelog import WriteLog

ENV_SECTORS = range(8, 40)
SECTOR = b"\xab" * 512


class Layout:
    """What a write touches, in the words DiskLayout uses."""

    def describe_range(self, sector: int, count: int, sector_size: int = 512) -> str:
        if sector in ENV_SECTORS:
            return "boot: uboot.env" if sector < 24 else "boot: uboot-redund.env"
        if sector >= 5000:
            return f"data block {(sector - 5000) // 2048}/16"
        return f"rootfs A block {(sector - 1000) // 2048}/64"


def recorded_update(tmp_path: Path) -> tuple[WriteLog, list[tuple[int, str]], dict[str, int]]:
    """A log of one update: the boot before it, a long install, the trial boot's
    bootcount save, the commit into both copies, and the client's books after it."""
    w = LogWriter()
    phases = [(0, "first boot")]
    w.write(5000, SECTOR)
    w.flush()
    phases.append((len(w.entries), "install"))
    for block in range(120):  # the slot, 1 MiB at a time, flushed now and then
        w.write(1000 + 8 * block, SECTOR)
        if block % 20 == 19:
            w.flush()
    w.flush()
    switch = w.write(8, SECTOR)  # the install points the env at the new slot
    w.flush()
    phases.append((len(w.entries), "reboot into the update"))
    trial_save = w.write(24, SECTOR)  # the bootloader counts the trial boot
    w.flush()
    for block in range(30):  # Linux of the new slot writes its logs
        w.write(5100 + 8 * block, SECTOR)
    w.flush()
    w.write(8, SECTOR)  # the commit, into both copies
    w.flush()
    commit = w.write(24, SECTOR)
    w.flush()
    w.write(6000, SECTOR)  # the client's database, after the commit
    w.write(6008, SECTOR)
    w.flush()
    phases.append((len(w.entries) - 3, "after commit"))
    marks = {"switch": switch, "trial_save": trial_save, "commit": commit}
    return WriteLog.open(w.save(tmp_path / "writes.log")), phases, marks


def test_the_quick_plan_reaches_the_commit_and_what_follows_it(tmp_path: Path) -> None:
    wlog, phases, marks = recorded_update(tmp_path)
    env_files = ("uboot.env", "uboot-redund.env")

    points = crash_points(wlog, Layout(), "quick", env_files=env_files, phases=phases)  # type: ignore[arg-type]
    indices = {p.index for p in points}
    states = states_for(wlog, points, "quick", seed=0)
    stated = {s.index for _, s in states}
    # A state is judged once however many points leave it (same writes kept).
    judged = {s.kept for _, s in states}

    # The install's switch landed; the trial boot's save landed; the commit
    # about to land and landed; the end of the log (the client's books too).
    wanted = {marks["switch"] + 1, marks["trial_save"] + 1, marks["commit"], marks["commit"] + 1}
    assert wanted | {len(wlog)} <= indices, sorted(indices)
    missing = [k for k in wanted | {len(wlog)} if ordered_state(wlog, k).kept not in judged]
    assert not missing, (missing, sorted(stated))
    # And the middle of the install's slot write.
    install, reboot = phases[1][0], phases[2][0]
    assert any(install < k < marks["switch"] - 10 for k in stated), sorted(stated)
    assert max(stated) == len(wlog) > reboot
    assert len(states) <= max(QUICK_MAX_STATES, len(points))


def test_the_full_plan_keeps_every_env_write_and_the_end(tmp_path: Path) -> None:
    wlog, phases, marks = recorded_update(tmp_path)
    env_files = ("uboot.env", "uboot-redund.env")

    points = crash_points(wlog, Layout(), "full", env_files=env_files, phases=phases)  # type: ignore[arg-type]

    assert {marks[m] + d for m in marks for d in (0, 1)} | {len(wlog)} <= {p.index for p in points}
