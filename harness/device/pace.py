"""Deadlines that follow the machine: boot and step deadlines scaled by the
pace this host shows on this run, with the fixed values as floors.

A fixed deadline is too tight on a shared CI host (a healthy boot declared
hung while three other QEMUs run) or, raised to fit the worst day, too loose
to catch a real hang quickly. So the harness measures two things instead:

- how busy the host is now: the run queue (`procs_running` in /proc/stat,
  runnable tasks at this instant) over the CPU count. The 1-minute load
  average lags a load that just started by a minute, which is the case that
  matters. A boot's deadline is kept in this pace: each second on the
  clock spends 1/factor of the budget, so a load that begins halfway through
  a boot stretches what is left of it;
- how fast this target booted earlier on this run (per process and target,
  in the same idle-host seconds): a boot may take `BOOT_SPREAD` times the
  fastest, never less than the floor, so a host that is slow even when idle
  does not need a hand-raised `boot_timeout_s`.

A deadline that fires says what it expected and this host's pace, so a
reader can tell a hung device from a host that was out of breath.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STAT = Path("/proc/stat")
# A boot may take this many times the fastest boot of its target on this run:
# boots of one image differ (a first boot, a rollback's extra saves), not threefold.
BOOT_SPREAD = 3.0

_RUNNING = re.compile(rb"^procs_running (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class RunQueue:
    """The host's run queue at one moment: tasks that could run, and CPUs to run them."""

    running: float  # a count, or an average of counts over a wait
    cpus: int

    @property
    def factor(self) -> float:
        """How many times slower than idle a CPU-bound task runs now (at least 1)."""
        return max(1.0, self.running / max(self.cpus, 1))

    def describe(self) -> str:
        return f"run queue {self.running:g} on {self.cpus} CPUs"


def read_run_queue(stat: Path = STAT) -> RunQueue | None:
    """This host's run queue now; None where the kernel does not say (not Linux)."""
    try:
        found = _RUNNING.search(stat.read_bytes())
    except OSError:
        return None
    if found is None:
        return None
    return RunQueue(int(found.group(1)), os.cpu_count() or 1)


Sampler = Callable[[], RunQueue | None]
Clock = Callable[[], float]


def _factor(queue: RunQueue | None) -> float:
    return 1.0 if queue is None else queue.factor


def _s(seconds: float) -> str:
    """'60 s', '0.5 s', '3.1 s': to a tenth, no trailing zeros."""
    return f"{round(seconds, 1):g} s"


@dataclass(frozen=True)
class Allowance:
    """A step's time: its floor scaled by the run queue when the step began."""

    floor_s: float
    queue: RunQueue | None = None

    @property
    def seconds(self) -> float:
        return self.floor_s * _factor(self.queue)

    def describe(self) -> str:
        """'30 s', or '30 s at this host's pace (75 s on the clock, run queue 5 on 2 CPUs)'."""
        if self.queue is None or self.queue.factor <= 1.0:
            return _s(self.floor_s)
        pace = self.queue.describe()
        return f"{_s(self.floor_s)} at this host's pace ({_s(self.seconds)} on the clock, {pace})"


class BootDeadline:
    """One boot's deadline, kept in this host's pace.

    `budget_s` is in idle-host seconds: every second on the clock spends
    1/factor of it, the factor read at each look (the slower of an
    interval's two ends counts, so a load that began within it is credited).
    """

    def __init__(
        self,
        floor_s: float,
        fastest_s: float | None,
        sample: Sampler | None,
        clock: Clock,
    ) -> None:
        self.floor_s = floor_s
        self.fastest_s = fastest_s
        self.budget_s = max(floor_s, BOOT_SPREAD * fastest_s) if fastest_s else floor_s
        self._sample = sample
        self._clock = clock
        self.started = self._last = clock()
        self._queue = sample() if sample is not None else None
        self.spent_s = 0.0  # idle-host seconds used
        self._running_s = 0.0  # the run queue integrated over the clock, for its average

    @property
    def paced(self) -> bool:
        return self._sample is not None

    def remaining(self) -> float:
        """Clock seconds left if the pace stays as it is now (<= 0: the deadline passed)."""
        now = self._clock()
        queue = self._sample() if self._sample is not None else None
        slower = max((q for q in (self._queue, queue) if q is not None), key=_factor, default=None)
        step = max(now - self._last, 0.0)
        self.spent_s += step / _factor(slower)
        self._running_s += step * (slower.running if slower is not None else 0.0)
        self._last, self._queue = now, queue
        return (self.budget_s - self.spent_s) * _factor(queue)

    @property
    def waited_s(self) -> float:
        """Clock seconds from the start to the last look."""
        return self._last - self.started

    def average(self) -> RunQueue | None:
        """The run queue over the wait so far, averaged on the clock."""
        if self._queue is None:
            return None
        if self.waited_s <= 0:
            return self._queue
        return RunQueue(round(self._running_s / self.waited_s, 1), self._queue.cpus)

    def limit(self) -> str:
        """What was allowed: '60 s', or '60 s at this host's pace'."""
        return _s(self.budget_s) + (" at this host's pace" if self.paced else "")

    def describe(self) -> str:
        """What was expected and this host's pace, for a deadline that fired:
        'not ready within 60 s at this host's pace (waited 143 s, run queue
        4.8 on 2 CPUs on average; this target's fastest boot on this run 3.1 s)'."""
        if not self.paced:
            return f"not ready within {_s(self.floor_s)}"
        budget = _s(self.budget_s)
        if self.budget_s > self.floor_s:
            budget += f" ({BOOT_SPREAD:g} x the fastest; floor {_s(self.floor_s)})"
        average = self.average()
        host = f"{average.describe()} on average" if average else "run queue unknown"
        fastest = (
            f"this target's fastest boot on this run {_s(self.fastest_s)} at an idle pace"
            if self.fastest_s is not None
            else "no boot of this target ready yet on this run"
        )
        return (
            f"not ready within {budget} at this host's pace "
            f"(waited {_s(self.waited_s)}, {host}; {fastest})"
        )


class Pace:
    """One target's pace on this run, in one process: the fastest ready boot
    (in idle-host seconds) and the host's run queue, which deadlines follow.

    `paced=False` gives today's fixed deadlines: exactly the floors.
    """

    def __init__(
        self,
        *,
        paced: bool = True,
        sample: Sampler = read_run_queue,
        clock: Clock = time.monotonic,
    ) -> None:
        self.paced = paced
        self._sample = sample
        self._clock = clock
        self.fastest_s: float | None = None

    @classmethod
    def fixed(cls) -> Pace:
        """Deadlines that are exactly their floors."""
        return cls(paced=False)

    def boot(self, floor_s: float) -> BootDeadline:
        """The deadline of a boot starting now: the floor, or `BOOT_SPREAD`
        times this target's fastest boot if more, kept in this host's pace."""
        if not self.paced:
            return BootDeadline(floor_s, None, None, self._clock)
        return BootDeadline(floor_s, self.fastest_s, self._sample, self._clock)

    def ready(self, deadline: BootDeadline) -> None:
        """A boot reached ready within `deadline`: the next ones follow its pace."""
        if not deadline.paced:
            return
        deadline.remaining()  # brings its spent time up to now
        if self.fastest_s is None or deadline.spent_s < self.fastest_s:
            self.fastest_s = deadline.spent_s

    def step(self, floor_s: float) -> Allowance:
        """The time for a step starting now: `floor_s` times the load factor."""
        return Allowance(floor_s, self._sample() if self.paced else None)


@contextmanager
def busy_host(processes: int) -> Iterator[list[int]]:
    """`processes` busy loops for the with-block (one per CPU: a loaded host),
    to show that deadlines follow the pace; their pids. They are ended on exit
    whatever happens, and die with this process if it is killed."""
    from harness.machines.qemu import die_with_parent  # labgrid: only when loading

    started: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(processes):
            started.append(
                subprocess.Popen(
                    [sys.executable, "-c", "while True: pass"],
                    stdin=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                    start_new_session=True,  # a Ctrl-C meant for a test run does not end them
                )
            )
        yield [proc.pid for proc in started]
    finally:
        for proc in started:
            proc.kill()
        for proc in started:
            proc.wait(timeout=10)
