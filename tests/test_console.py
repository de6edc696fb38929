"""tee_console hears a real labgrid console (SerialDriver on a pty) through
labgrid's public step events: every chunk, in order, before the reader
sees it, only from that console, and nothing after it is stopped."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from labgrid import Target
from labgrid.driver import SerialDriver
from labgrid.resource import RawSerialPort

from harness.device.console import tee_console


def read_line(console: SerialDriver, timeout_s: float = 2.0) -> bytes:
    """One line from the console: a pty hands out what has arrived, maybe a part."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while b"\n" not in data and time.monotonic() < deadline:
        data += console.read(timeout=max(0.01, deadline - time.monotonic()))
    return data


@pytest.fixture
def pty_console() -> Iterator[tuple[int, SerialDriver, Target]]:
    master, slave = os.openpty()
    target = Target("tee")
    RawSerialPort(target, name=None, port=os.ttyname(slave), speed=115200)
    driver = SerialDriver(target, name=None)
    target.activate(driver)
    try:
        yield master, driver, target
    finally:
        target.deactivate_all_drivers()
        os.close(master)
        os.close(slave)


def test_every_chunk_reaches_the_sink_before_expect_returns(
    pty_console: tuple[int, SerialDriver, Target],
) -> None:
    master, console, _ = pty_console
    seen: list[bytes] = []
    stop = tee_console(console, seen.append)
    try:
        os.write(master, b"U-Boot 2023.01\r\n")
        console.expect("2023.01", timeout=2)
        assert b"".join(seen) == b"U-Boot 2023.01\r\n"
        os.write(master, b"ab-boot: slot=A\r\n")
        console.expect("slot=A", timeout=2)
    finally:
        stop()
    assert b"".join(seen) == b"U-Boot 2023.01\r\nab-boot: slot=A\r\n"
    assert all(seen)  # idle reads are not passed on


def test_stopped_tee_hears_nothing_and_stopping_twice_is_harmless(
    pty_console: tuple[int, SerialDriver, Target],
) -> None:
    master, console, _ = pty_console
    seen: list[bytes] = []
    stop = tee_console(console, seen.append)
    stop()
    stop()
    os.write(master, b"after\n")
    assert read_line(console) == b"after\n"
    assert seen == []


def test_another_console_is_not_heard(pty_console: tuple[int, SerialDriver, Target]) -> None:
    master, console, _ = pty_console
    seen: list[bytes] = []
    stop = tee_console(object(), seen.append)  # a different console instance
    try:
        os.write(master, b"not for you\n")
        assert read_line(console) == b"not for you\n"
    finally:
        stop()
    assert seen == []
