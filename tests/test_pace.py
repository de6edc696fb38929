"""Deadlines that follow the machine (harness.device.pace): the arithmetic on a fake
clock and a scripted run queue, the messages a deadline that fires gives,
and a real boot watcher whose deadline stretches with the run queue."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_boot_watcher import MARKERS, READY, PipeConsole, uboot

from harness.device.boot import BootWatcher
from harness.device.pace import BOOT_SPREAD, Allowance, Pace, RunQueue, busy_host, read_run_queue
from harness.device.serial_log import SerialRecorder
from harness.device.shell import Shell
from harness.errors import DeviceError


class Host:
    """A fake clock and run queue: `tick` moves time on, `queue` is what /proc/stat says."""

    def __init__(self, running: int = 1, cpus: int = 2) -> None:
        self.now = 100.0
        self.queue: RunQueue | None = RunQueue(running, cpus)

    def clock(self) -> float:
        return self.now

    def sample(self) -> RunQueue | None:
        return self.queue

    def tick(self, seconds: float, running: int | None = None) -> None:
        self.now += seconds
        if running is not None and self.queue is not None:
            self.queue = RunQueue(running, self.queue.cpus)

    def pace(self) -> Pace:
        return Pace(sample=self.sample, clock=self.clock)

    def ready_after(self, pace: Pace, seconds: float) -> None:
        """A boot of `pace`'s target that is ready `seconds` from now on the clock."""
        boot = pace.boot(1)
        self.tick(seconds)
        pace.ready(boot)


def test_the_run_queue_is_read_from_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_bytes(b"cpu  1 2 3\nctxt 99\nprocs_running 5\nprocs_blocked 0\n")

    queue = read_run_queue(stat)

    assert queue == RunQueue(5, os.cpu_count() or 1)
    assert read_run_queue(tmp_path / "missing") is None
    stat.write_bytes(b"cpu  1 2 3\n")
    assert read_run_queue(stat) is None
    assert read_run_queue() is not None  # this host is Linux


def test_the_load_factor_is_the_run_queue_per_cpu_and_never_below_one() -> None:
    assert RunQueue(5, 2).factor == 2.5
    assert RunQueue(1, 2).factor == 1.0
    assert RunQueue(0, 4).factor == 1.0


def test_an_idle_host_keeps_the_floor_to_the_second() -> None:
    host = Host(running=1)
    deadline = host.pace().boot(60)

    host.tick(59.9)
    assert deadline.remaining() == pytest.approx(0.1)
    host.tick(0.1)
    assert deadline.remaining() <= 0


def test_a_busy_host_stretches_the_first_boot_by_its_run_queue() -> None:
    host = Host(running=5)  # 2.5 times slower than idle
    deadline = host.pace().boot(60)

    host.tick(149)
    assert deadline.remaining() == pytest.approx(1.0)  # 0.4 idle-host seconds, at 2.5
    host.tick(1)
    assert deadline.remaining() <= 0


def test_a_load_that_starts_mid_boot_stretches_what_is_left() -> None:
    host = Host(running=1)
    deadline = host.pace().boot(60)

    host.tick(30)  # idle: half the budget spent
    assert deadline.remaining() == pytest.approx(30)
    host.tick(0.1, running=8)  # four times slower from now on
    deadline.remaining()
    host.tick(119.5)
    assert deadline.remaining() == pytest.approx(0.4)  # 0.1 idle-host seconds, at a quarter
    host.tick(0.5)
    assert deadline.remaining() <= 0  # 30 s idle + 120 s at a quarter speed: 60 s of work


def test_later_boots_may_take_the_spread_times_the_fastest_in_idle_seconds() -> None:
    host = Host(running=4)  # twice as slow as idle
    pace = host.pace()
    host.ready_after(pace, 16)  # 8 idle-host seconds
    assert pace.fastest_s == pytest.approx(8)

    second = pace.boot(10)
    assert second.budget_s == pytest.approx(BOOT_SPREAD * 8)
    host.tick(2 * BOOT_SPREAD * 8 - 1, running=4)
    assert second.remaining() > 0

    host.tick(0, running=2)  # idle now
    host.ready_after(pace, 5)
    assert pace.fastest_s == pytest.approx(5)
    assert pace.boot(10).budget_s == pytest.approx(BOOT_SPREAD * 5)
    host.ready_after(pace, 9)
    assert pace.fastest_s == pytest.approx(5)  # the fastest, not the last


def test_the_fastest_boot_never_lowers_the_floor() -> None:
    host = Host()
    pace = host.pace()
    host.ready_after(pace, 2)

    assert pace.boot(60).budget_s == 60


def test_fixed_deadlines_are_exactly_the_floors_whatever_the_host_does() -> None:
    host = Host(running=9)
    pace = Pace(paced=False, sample=host.sample, clock=host.clock)
    boot = pace.boot(60)
    host.tick(59)
    assert boot.remaining() == pytest.approx(1)
    pace.ready(boot)

    assert pace.fastest_s is None
    assert pace.step(30).seconds == 30
    assert boot.describe() == "not ready within 60 s"
    assert boot.limit() == "60 s"


def test_a_boot_deadline_that_fires_says_what_it_expected_and_the_pace() -> None:
    host = Host(running=4)
    pace = host.pace()
    host.ready_after(pace, 6.2)  # 3.1 s at an idle pace
    second = pace.boot(60)
    host.tick(10, running=5)
    second.remaining()
    host.tick(140)  # at 2.5 times slower than idle: 4 + 56 idle-host seconds
    assert second.remaining() <= 0

    assert second.describe() == (
        "not ready within 60 s at this host's pace (waited 150 s, run queue 5 on 2 CPUs on "
        "average; this target's fastest boot on this run 3.1 s at an idle pace)"
    )
    assert second.limit() == "60 s at this host's pace"


def test_a_budget_set_by_the_fastest_boot_names_it_and_the_floor() -> None:
    host = Host(running=2)
    pace = host.pace()
    host.ready_after(pace, 25)
    second = pace.boot(10)
    host.tick(80)
    second.remaining()

    assert second.describe() == (
        "not ready within 75 s (3 x the fastest; floor 10 s) at this host's pace (waited 80 s, "
        "run queue 2 on 2 CPUs on average; this target's fastest boot on this run 25 s at an "
        "idle pace)"
    )


def test_the_first_boot_says_no_boot_was_ready_yet() -> None:
    host = Host(running=3)
    deadline = host.pace().boot(60)
    host.tick(90)
    deadline.remaining()

    assert deadline.describe().endswith("no boot of this target ready yet on this run)")
    assert "run queue 3 on 2 CPUs on average" in deadline.describe()


def test_a_step_gets_its_floor_times_the_run_queue_now() -> None:
    host = Host(running=5)
    allowed = host.pace().step(30)

    assert allowed.seconds == 75
    assert allowed.describe() == (
        "30 s at this host's pace (75 s on the clock, run queue 5 on 2 CPUs)"
    )
    assert Allowance(30, RunQueue(1, 2)).describe() == "30 s"
    assert Allowance(30).describe() == "30 s"


class SlowCommand:
    """A CommandProtocol driver whose command never ends: pexpect's TIMEOUT."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def run(self, cmd: str, timeout: float = 30.0) -> tuple[list[str], list[str], int]:
        from pexpect import TIMEOUT

        self.timeouts.append(timeout)
        raise TIMEOUT("no prompt")


def test_a_shell_command_waits_in_the_hosts_pace_and_says_so() -> None:
    host = Host(running=6)
    driver = SlowCommand()

    with pytest.raises(DeviceError) as caught:
        Shell(driver, pace=host.pace()).exec("mender install x", timeout_s=60)

    assert driver.timeouts == [180]
    assert caught.value.cause == (
        "device command did not finish within 60 s at this host's pace (180 s on the clock, "
        "run queue 6 on 2 CPUs): mender install x"
    )


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    try:
        yield read_fd, write_fd
    finally:
        os.close(write_fd)
        os.close(read_fd)


def test_a_watcher_waits_longer_on_a_busy_host_and_names_its_pace(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    recorder = SerialRecorder(MARKERS.banner)
    busy = RunQueue(4, 2)  # twice as slow as idle
    watcher = BootWatcher(
        PipeConsole(read_fd, recorder.feed), MARKERS, READY, tail=lambda: recorder.tail(15)
    )
    watcher.pace = Pace(sample=lambda: busy)
    os.write(write_fd, b"".join(uboot("B", 3, "1", 1)))

    started = time.monotonic()
    with pytest.raises(DeviceError) as caught:
        watcher.wait_ready(per_boot_s=0.5, max_boots=1)
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 1.5  # 0.5 s of an idle host's time, at half speed
    assert re.match(
        r"device hung: boot #1 not ready within 0.5 s at this host's pace \(waited 1(\.\d)? s, "
        r"run queue 4 on 2 CPUs on average; no boot of this target ready yet on this run\)\n",
        caught.value.cause,
    ), caught.value.cause
    assert watcher.history[0].failure == "hung: not ready within 0.5 s at this host's pace"


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_busy_host_is_busy_and_its_processes_end_even_on_an_error() -> None:
    with pytest.raises(RuntimeError, match="the test failed"), busy_host(2) as pids:
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        time.sleep(0.3)
        queue = read_run_queue()
        assert queue is not None and queue.running >= 2  # both loops are runnable
        raise RuntimeError("the test failed")

    assert not any(alive(pid) for pid in pids)
