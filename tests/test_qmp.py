"""QmpChannel against a real, paused QEMU (no guest code runs: -S)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import DeviceError
from harness.machines.qmp import QmpChannel, QmpCommandError

QEMU = "qemu-system-aarch64"

pytestmark = pytest.mark.skipif(shutil.which(QEMU) is None, reason=f"{QEMU} not installed")


@dataclass(frozen=True)
class PausedQemu:
    process: subprocess.Popen[bytes]
    socket_path: Path


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A unix socket path must fit in 108 bytes; pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="abqmp-") as name:
        yield Path(name)


@pytest.fixture
def qemu(short_dir: Path) -> Iterator[PausedQemu]:
    socket_path = short_dir / "qmp.sock"
    disk = short_dir / "scratch.img"
    disk.write_bytes(bytes(1024 * 1024))
    argv = [
        QEMU, "-machine", "virt", "-cpu", "cortex-a57", "-nographic", "-nodefaults",
        "-display", "none", "-S",
        "-drive", f"if=none,id=scratch,format=raw,file={disk}",
        "-qmp", f"unix:{socket_path},server=on,wait=off",
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        yield PausedQemu(process, socket_path)
    finally:
        # SIGKILL also ends a QEMU that a test left stopped with SIGSTOP.
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def channel(qemu: PausedQemu) -> Iterator[QmpChannel]:
    # Connecting right after Popen also exercises waiting for the socket to appear.
    with QmpChannel.connect(qemu.socket_path, timeout_s=10.0) as chan:
        yield chan


def test_query_status_of_a_paused_qemu(channel: QmpChannel) -> None:
    status = channel.execute("query-status")

    assert status["status"] in ("prelaunch", "paused")
    assert status["running"] is False


def test_greeting_names_the_qemu_version(channel: QmpChannel) -> None:
    assert channel.greeting["QMP"]["version"]["qemu"]["major"] >= 7


def test_query_block_lists_the_drive(channel: QmpChannel) -> None:
    blocks = channel.execute("query-block")

    assert [b["device"] for b in blocks] == ["scratch"]
    assert blocks[0]["inserted"]["drv"] == "raw"


def test_arguments_are_passed(channel: QmpChannel) -> None:
    channel.execute("block_set_io_throttle", _throttle("scratch", bps=1024 * 1024))

    limits = channel.execute("query-block")[0]["inserted"]
    assert limits["bps"] == 1024 * 1024


def test_unknown_command_raises_with_qemus_message(channel: QmpChannel) -> None:
    with pytest.raises(QmpCommandError) as caught:
        channel.execute("no-such-command")

    err = caught.value
    assert isinstance(err, DeviceError)
    assert err.command == "no-such-command"
    assert err.error_class == "CommandNotFound"
    assert err.desc == "The command no-such-command has not been found"
    assert str(err) == (
        "QMP command 'no-such-command' failed: "
        "The command no-such-command has not been found (CommandNotFound)"
    )


def test_bad_argument_raises_and_channel_stays_usable(channel: QmpChannel) -> None:
    with pytest.raises(QmpCommandError, match="Parameter 'bogus' is unexpected"):
        channel.execute("query-status", {"bogus": 1})

    assert channel.execute("query-status")["running"] is False


def test_unanswered_command_times_out_and_late_reply_is_not_misrouted(
    qemu: PausedQemu, channel: QmpChannel, caplog: pytest.LogCaptureFixture
) -> None:
    # A stopped QEMU process reads nothing: the command goes unanswered.
    os.kill(qemu.process.pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(DeviceError, match=r"did not answer QMP 'query-block' within 0\.3 s"):
        channel.execute("query-block", timeout_s=0.3)
    assert time.monotonic() - started < 2.0

    os.kill(qemu.process.pid, signal.SIGCONT)
    # QEMU now answers query-block late; that reply must not be taken for this one.
    status = channel.execute("query-status", timeout_s=5.0)
    assert "status" in status
    assert "device" not in str(status)
    # Proof the late reply did arrive, and was dropped by its id.
    assert any("message dropped" in r.getMessage() for r in caplog.records)


def test_connect_to_absent_socket_times_out(short_dir: Path) -> None:
    path = short_dir / "nobody.sock"
    started = time.monotonic()

    with pytest.raises(DeviceError, match=re.escape(str(path))):
        QmpChannel.connect(path, timeout_s=0.5)

    assert 0.5 <= time.monotonic() - started < 3.0


def test_connect_to_socket_nobody_serves_times_out(short_dir: Path) -> None:
    path = short_dir / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening: connect() is refused
        started = time.monotonic()

        with pytest.raises(DeviceError, match=r"no QMP server accepted on .*dead\.sock"):
            QmpChannel.connect(path, timeout_s=0.5)

        assert 0.5 <= time.monotonic() - started < 3.0


def test_second_client_gets_no_greeting_and_times_out(
    qemu: PausedQemu, channel: QmpChannel
) -> None:
    started = time.monotonic()

    with pytest.raises(DeviceError, match="sent no greeting"):
        QmpChannel.connect(qemu.socket_path, timeout_s=0.5)

    assert time.monotonic() - started < 3.0
    assert channel.execute("query-status")["running"] is False


def test_after_quit_commands_fail_and_close_is_quiet(qemu: PausedQemu) -> None:
    chan = QmpChannel.connect(qemu.socket_path)
    chan.execute("quit")
    assert qemu.process.wait(timeout=10) == 0

    with pytest.raises(DeviceError, match="lost during 'query-status'"):
        chan.execute("query-status")
    chan.close()
    chan.close()

    with pytest.raises(RuntimeError, match="closed channel"):
        chan.execute("query-status")


def _throttle(device: str, bps: int) -> dict[str, object]:
    limits = dict.fromkeys(("bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr"), 0)
    # "device" names the -drive id; "id" would name a qdev device, and there is none.
    return {"device": device, "bps": bps, **limits}
