"""Console logs on disk while the device talks: after each chunk, serial.log
holds every byte so far and boot-NN.log every complete line of its boot;
at the end they equal what the recorder's final write produces."""

from __future__ import annotations

import re
from pathlib import Path

from harness.device.console_log import LiveConsoleLog
from harness.device.serial_log import SerialRecorder

STREAM = [
    b"\r\n",
    b"U-Boot 2023.01\r\r\nab-boot: slot=A",
    b" bootcount=0\r\r\nab-init: rea",
    b"dy slot=A version=1\r\r\nab-shell# reboot\r\n\r\nU-Bo",
    b"ot 2023.01\r\r\nab-boot: slot=B bootcount=1\r\r\n",
    b"ab-init: ready slot=B version=2\r\r\n",
]


def recorder() -> SerialRecorder:
    return SerialRecorder(re.compile(rb"U-Boot 20\d\d"))


def test_logs_grow_chunk_by_chunk_one_file_per_boot(tmp_path: Path) -> None:
    rec = recorder()
    live = LiveConsoleLog(rec, tmp_path)

    def feed(chunk: bytes) -> None:
        rec.feed(chunk)
        live(chunk)

    for chunk in STREAM[:3]:
        feed(chunk)
    assert (tmp_path / "serial.log").read_bytes() == b"".join(STREAM[:3])
    assert (tmp_path / "boot-01.log").read_text() == (
        "U-Boot 2023.01\nab-boot: slot=A bootcount=0\n"
    )  # the half line 'ab-init: rea' waits for its end
    assert not (tmp_path / "boot-02.log").exists()

    feed(STREAM[3])  # the second banner is still cut: 'U-Bo'
    assert "ab-shell# reboot\n" in (tmp_path / "boot-01.log").read_text()
    assert not (tmp_path / "boot-02.log").exists()

    for chunk in STREAM[4:]:
        feed(chunk)
    assert (tmp_path / "boot-02.log").read_text().startswith("U-Boot 2023.01\nab-boot: slot=B")
    live.close()

    final = tmp_path / "final"
    rec.write(final)
    assert not (tmp_path / "pre-boot.log").exists()  # only blank lines before U-Boot
    for name in ("serial.log", "boot-01.log", "boot-02.log"):
        assert (tmp_path / name).read_bytes() == (final / name).read_bytes(), name
