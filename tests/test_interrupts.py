"""Ctrl-C and SIGTERM (harness.plugin.interrupts): the machines a run holds are
killed at the signal itself, before pytest unwinds; the interrupt's report is
cut to the frame pytest prints; an interrupted run exits without the final
garbage collections. Real signals, sent to this process."""

from __future__ import annotations

import gc
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.machines.tempdirs import drop_tempdir
from harness.plugin.interrupts import Interrupts


class Machine:
    """Stands in for ABQEMUDriver: records when it was killed."""

    def __init__(self) -> None:
        self.killed = 0

    def kill_now(self) -> int | None:
        self.killed += 1
        return 4242


@pytest.fixture
def interrupts(pytestconfig: pytest.Config) -> Iterator[Interrupts]:
    handlers = Interrupts(pytestconfig)
    handlers.install()
    try:
        yield handlers
    finally:
        handlers.uninstall()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_signal_kills_held_machines_before_anything_unwinds(
    interrupts: Interrupts, sig: int
) -> None:
    held, released = Machine(), Machine()
    with interrupts.holding(released):
        pass

    with pytest.raises(KeyboardInterrupt), interrupts.holding(held):
        os.kill(os.getpid(), sig)
        # The handler runs here, between two bytecodes: the machine is
        # already dead when the interrupt starts to unwind.

    assert (held.killed, released.killed) == (1, 0)
    assert interrupts.interrupted
    if sig == signal.SIGTERM:  # a second SIGTERM would kill outright
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_uninstall_gives_the_signals_back(pytestconfig: pytest.Config) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    handlers = Interrupts(pytestconfig)
    handlers.install()
    assert signal.getsignal(signal.SIGINT) != before[0]
    handlers.uninstall()

    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def nested(depth: int) -> None:
    if depth:
        nested(depth - 1)
    raise KeyboardInterrupt


def test_the_interrupts_report_keeps_only_the_frame_pytest_prints(
    pytestconfig: pytest.Config,
) -> None:
    with pytest.raises(KeyboardInterrupt) as caught:
        nested(5)
    assert len(caught.traceback) == 7

    Interrupts(pytestconfig).pytest_keyboard_interrupt(caught)

    assert len(caught.traceback) == 1
    assert caught.traceback[0].name == "nested"


def test_an_interrupted_run_exits_without_collecting(pytestconfig: pytest.Config) -> None:
    quiet = Interrupts(pytestconfig)
    quiet.pytest_unconfigure()
    assert gc.get_freeze_count() == 0  # a run that ended by itself collects as usual

    interrupted = Interrupts(pytestconfig)
    interrupted.interrupted = True
    try:
        interrupted.pytest_unconfigure()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_an_activation_cut_short_leaves_no_temp_folder(tmp_path: Path) -> None:
    folder = tmp_path / "labgrid-qemu-tmp-x"
    folder.mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(folder / "serialrw"))

    drop_tempdir(str(folder), sock)

    assert not folder.exists()
    assert sock.fileno() == -1  # closed
    drop_tempdir(None, None)  # nothing made yet: nothing to do
