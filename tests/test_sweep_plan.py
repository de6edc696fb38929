"""The sweep's plan: the quick sweep spans the whole update (the install, the
trial boot's save, the commit and what follows it), and the data check
covers each distinct data partition. Shown on write logs written with the
test's own dm-log-writes writer."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from dmlog import LogWriter

from harness.crashsweep.crashstate import extents, ordered_state
from harness.crashsweep.disklayout import DiskLayout, PartitionInfo
from harness.crashsweep.sweep import checks_data
from harness.crashsweep.sweep_plan import (
    QUICK_MAX_STATES,
    Classifier,
    Experiment,
    Point,
    crash_points,
    states_for,
)
from harness.crashsweep.writelog import WriteLog
from harness.targets.target import EnvLocation

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


def test_each_distinct_data_partition_is_its_own_class_and_its_data_is_checked(
    tmp_path: Path,
) -> None:
    """States whose data partitions differ are booted (and their data checked)
    apart; states that differ only in the slot the env does not select share a
    boot. A class is checked when any of its members was cut after the sync."""
    sector = 512
    parts = {1: ("boot", 100), 2: ("rootfs A", 200), 3: ("rootfs B", 300), 4: ("data", 400)}
    base = tmp_path / "base.img"
    base.write_bytes(bytes(500 * sector))
    w = LogWriter()
    w.write(410, b"\x01" * sector)  # the data file
    w.flush()
    w.write(420, b"\x02" * sector)  # more data, after the file was synced
    w.flush()
    w.write(310, b"\x03" * sector)  # the slot the env does not select
    wlog = WriteLog.open(w.save(tmp_path / "writes.log"))
    layout = DiskLayout(
        500 * sector,
        "dos",
        tuple(
            PartitionInfo(n, name, start * sector, 64 * sector)
            for n, (name, start) in parts.items()
        ),
    )
    spec = SimpleNamespace(env=EnvLocation(1, ("uboot.env",), 0x4000), slots={"A": 2, "B": 3})
    recording = SimpleNamespace(base=base, log=wlog.path)
    classifier = Classifier(recording, spec, None, layout)  # type: ignore[arg-type]

    def key(index: int) -> str:
        return classifier.key(extents(wlog, ordered_state(wlog, index)), "A")

    assert key(2) != key(4)  # the data partitions differ: two boots, two data checks
    assert key(4) == key(5)  # only unselected slot B differs: one boot
    synced_at = 2
    before, after = (Point(k, "flush", "data") for k in (1, 4))
    one = Experiment("k", ((before, ordered_state(wlog, 1)), (after, ordered_state(wlog, 4))), "A")
    assert checks_data(one, synced_at)  # its representative (k=1) was cut before the sync
    assert not checks_data(Experiment("k", one.states[:1], "A"), synced_at)
