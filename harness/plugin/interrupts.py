"""Ctrl-C and SIGTERM end a run fast, also on a loaded host.

Unwinding an interrupted run takes seconds there: pytest formats the whole
traceback of the interrupt (tens of frames, each source file parsed), then
fixtures tear down and write their evidence. QEMU used to live through all
of that. So, at the signal:

- every QEMU the run's tests hold is killed at once, as a power cut would
  (what the guest wrote is on the disk image; the serial log is on disk
  already), before pytest starts unwinding;
- SIGTERM (a CI cancel, `timeout`) is taken as Ctrl-C: fixtures tear down,
  the evidence and the summary are written; a second SIGTERM kills outright;
- pytest's report of the interrupt is cut to the frame it prints anyway
  (not with --full-trace), which saves formatting the rest;
- once the run's evidence and summary are out, the garbage collections that
  pytest's cleanup and Python's exit make over every object of the run
  (most of a second on a busy host) are skipped.
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import pytest


class Killable(Protocol):
    """A machine that can be stopped from a signal handler (ABQEMUDriver)."""

    def kill_now(self) -> int | None: ...


class Interrupts:
    """The run's SIGINT and SIGTERM handlers and the machines they kill (a
    pytest plugin object: it also shortens pytest's report of the interrupt)."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._machines: list[Killable] = []
        self._previous: dict[int, Any] = {}
        self.interrupted = False  # a Ctrl-C or SIGTERM came: teardown should be quick

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (only the main thread may)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._interrupted)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    @contextmanager
    def holding(self, machine: Killable | None) -> Iterator[None]:
        """Kill `machine` at a Ctrl-C or SIGTERM during the with-block."""
        if machine is None:
            yield
            return
        self._machines.append(machine)
        try:
            yield
        finally:
            self._machines.remove(machine)

    def _interrupted(self, signum: int, frame: object) -> None:
        self.interrupted = True
        for machine in list(self._machines):
            machine.kill_now()
        if signum == signal.SIGTERM:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills outright
            raise KeyboardInterrupt("SIGTERM")
        raise KeyboardInterrupt

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        """pytest prints the last frame of an interrupt unless --full-trace, but
        formats them all first: leave it the last one."""
        if not self._config.getoption("fulltrace", False) and len(excinfo.traceback) > 1:
            excinfo.traceback = excinfo.traceback[-1:]

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self) -> None:
        """After the last hook of an interrupted run: nothing left needs the
        collector (it would look for exceptions in finalizers), so exit without it."""
        if self.interrupted:
            gc.freeze()
