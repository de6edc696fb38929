"""SerialRecorder: one console stream in, one log per boot out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.device.serial_log import BootSegment, SerialRecorder

BANNER = re.compile(rb"U-Boot 20\d\d\.\d\d")

BOOT_1 = b"\r\r\nU-Boot 2023.01+dfsg-2 (Jan 01 2023)\r\r\nDRAM: 512 MiB\r\r\nbootcount=1\r\r\n"
BOOT_2 = b"U-Boot 2023.01+dfsg-2 (Jan 01 2023)\r\r\nbootcount=2\r\r\n# "
STREAM = BOOT_1 + BOOT_2


class FakeClock:
    """Returns 1.0, 2.0, 3.0, ...: the n-th feed() happens at time n."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def feed_all(recorder: SerialRecorder, *chunks: bytes) -> SerialRecorder:
    for chunk in chunks:
        recorder.feed(chunk)
    return recorder


def test_one_chunk_two_boots() -> None:
    recorder = feed_all(SerialRecorder(BANNER, clock=FakeClock()), STREAM)

    boots = recorder.boots()

    assert boots == [
        BootSegment(0, 1.0, b"\r\r\n"),
        BootSegment(1, 1.0, BOOT_1[3:]),
        BootSegment(2, 1.0, BOOT_2),
    ]


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_anywhere_finds_the_same_boots(cut: int) -> None:
    recorder = feed_all(SerialRecorder(BANNER, clock=FakeClock()), STREAM[:cut], STREAM[cut:])

    boots = recorder.boots()

    assert [b.text for b in boots] == [b"\r\r\n", BOOT_1[3:], BOOT_2]
    second_banner_end = len(BOOT_1) + len(b"U-Boot 2023.01")
    # A boot is timestamped by the chunk that completed its banner.
    assert boots[2].started_at == (1.0 if cut >= second_banner_end else 2.0)


def test_byte_by_byte_timestamps_banner_completion() -> None:
    recorder = feed_all(SerialRecorder(BANNER, clock=FakeClock()), *[bytes([b]) for b in STREAM])

    boots = recorder.boots()

    first_banner_end = 3 + len(b"U-Boot 2023.01")
    second_banner_end = len(BOOT_1) + len(b"U-Boot 2023.01")
    assert [(b.index, b.started_at) for b in boots] == [
        (0, 1.0),
        (1, float(first_banner_end)),
        (2, float(second_banner_end)),
    ]
    assert b"".join(b.text for b in boots) == STREAM


def test_no_pre_boot_segment_when_stream_starts_with_banner() -> None:
    recorder = feed_all(SerialRecorder(BANNER), BOOT_2)
    assert [b.index for b in recorder.boots()] == [1]


def test_no_banner_yet_is_all_pre_boot() -> None:
    recorder = feed_all(SerialRecorder(BANNER, clock=FakeClock()), b"QEMU ", b"starting\n")
    assert recorder.boots() == [BootSegment(0, 1.0, b"QEMU starting\n")]


def test_empty_recorder_has_no_boots() -> None:
    assert SerialRecorder(BANNER).boots() == []


def test_banner_mid_line_is_not_a_boundary() -> None:
    echoed = b"# grep 'U-Boot 2023.01' /proc/cmdline\r\r\n# echo U-Boot 2023.01\r\r\n"
    # The output of that echo does start a line, so it does count as a banner.
    output = b"U-Boot 2023.01x\r\r\n"
    recorder = feed_all(SerialRecorder(BANNER), BOOT_1, echoed, output)

    boots = recorder.boots()

    assert [b.index for b in boots] == [0, 1, 2]
    assert boots[1].text == BOOT_1[3:] + echoed
    assert boots[2].text == output


def test_banner_after_lf_cr_line_end() -> None:
    recorder = feed_all(SerialRecorder(BANNER), b"old\n\r", b"\rU-Boot 2023.01\n")
    boots = recorder.boots()
    assert [b.text for b in boots] == [b"old\n", b"\r\rU-Boot 2023.01\n"]


def test_long_line_without_banner_is_decided_early() -> None:
    recorder = SerialRecorder(BANNER, max_banner_len=16)
    recorder.feed(b"x" * 40)
    recorder.feed(b"U-Boot 2023.01 mid-line\nU-Boot 2023.01\n")
    assert [b.index for b in recorder.boots()] == [0, 1]


def test_str_pattern_is_refused() -> None:
    with pytest.raises(TypeError):
        SerialRecorder(re.compile("U-Boot"))  # type: ignore[arg-type]


def test_tail_strips_escapes_and_carriage_returns() -> None:
    recorder = feed_all(
        SerialRecorder(BANNER),
        b"line1\r\r\nline2\r\r\n\x1b[6n\x1b[1;32mgreen\x1b[0m\r\r\n",
        b"\x1b]0;title\x07# \xff",
    )

    assert recorder.tail(2) == "green\n# \ufffd"
    assert recorder.tail() == "line1\nline2\ngreen\n# \ufffd"


def test_tail_counts_a_terminated_last_line_once() -> None:
    recorder = feed_all(SerialRecorder(BANNER), b"a\nb\nc\n")
    assert recorder.tail(2) == "b\nc"
    assert recorder.tail(0) == ""
    assert recorder.tail(10) == "a\nb\nc"


def test_write_names_and_contents(tmp_path: Path) -> None:
    recorder = feed_all(SerialRecorder(BANNER), b"firmware noise\n", STREAM)
    out = tmp_path / "logs" / "session-1"

    paths = recorder.write(out)

    assert [p.name for p in paths] == ["serial.log", "pre-boot.log", "boot-01.log", "boot-02.log"]
    assert all(p.parent == out for p in paths)
    assert (out / "serial.log").read_bytes() == b"firmware noise\n" + STREAM
    assert (out / "pre-boot.log").read_text() == "firmware noise\n\n"
    assert (out / "boot-01.log").read_text() == (
        "U-Boot 2023.01+dfsg-2 (Jan 01 2023)\nDRAM: 512 MiB\nbootcount=1\n"
    )
    assert (out / "boot-02.log").read_bytes() == (
        b"U-Boot 2023.01+dfsg-2 (Jan 01 2023)\nbootcount=2\n# "
    )


def test_write_skips_a_blank_pre_boot_segment(tmp_path: Path) -> None:
    recorder = feed_all(SerialRecorder(BANNER), b"\n\n", STREAM)

    paths = recorder.write(tmp_path)

    assert [p.name for p in paths] == ["serial.log", "boot-01.log", "boot-02.log"]
    assert (tmp_path / "serial.log").read_bytes() == b"\n\n" + STREAM


def test_write_again_overwrites_with_more_output(tmp_path: Path) -> None:
    recorder = feed_all(SerialRecorder(BANNER), BOOT_2)
    assert [p.name for p in recorder.write(tmp_path)] == ["serial.log", "boot-01.log"]

    recorder.feed(b"reboot\r\r\n" + BOOT_2)
    paths = recorder.write(tmp_path)

    assert [p.name for p in paths] == ["serial.log", "boot-01.log", "boot-02.log"]
    assert (tmp_path / "boot-01.log").read_text().endswith("# reboot\n")
    assert (tmp_path / "serial.log").read_bytes() == BOOT_2 + b"reboot\r\r\n" + BOOT_2


def test_feed_does_not_rescan_old_output() -> None:
    """Feeding a long boot chunk by chunk scans each byte a bounded number of times."""
    calls: list[tuple[int, int]] = []

    class CountingPattern:
        pattern = BANNER.pattern

        def match(self, data: bytes, pos: int, endpos: int) -> re.Match[bytes] | None:
            calls.append((pos, endpos))
            return BANNER.match(data, pos, endpos)

    recorder = SerialRecorder(CountingPattern())  # type: ignore[arg-type]
    line = b"[    1.000000] some kernel message of a typical length\r\r\n"
    for _ in range(2000):
        recorder.feed(line)

    scanned = sum(end - pos for pos, end in calls)
    assert scanned < 2000 * 2 * recorder.max_banner_len
    assert len(calls) < 2000 * 3
