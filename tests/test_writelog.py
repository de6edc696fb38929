"""The dm-log-writes reader: entries, lazily read data, every kind of bad input."""

from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import pytest
from dmlog import DISCARD, LogWriter, sector_bytes

from harness.cli import main
from harness.crashsweep.writelog import WriteLog
from harness.errors import HarnessConfigError


def sample_log() -> LogWriter:
    w = LogWriter()
    w.write(8, sector_bytes(0xA1, 2))
    w.flush()
    w.write(3, sector_bytes(0xB2), fua=True)
    w.discard(40, 4)
    w.mark("after-discard")
    w.write(20, sector_bytes(0xC3, 3))
    return w


def one_line_error(excinfo: pytest.ExceptionInfo[HarnessConfigError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and " — fix: " in text
    return text


def test_entries_and_their_data(tmp_path: Path) -> None:
    wlog = WriteLog.open(sample_log().save(tmp_path / "log.bin"))
    assert len(wlog) == 6 and wlog.superblock_entries == 6 and wlog.tail_entries == 0
    assert [e.kind for e in wlog] == [
        "write",
        "flush",
        "write+fua",
        "discard",
        "mark 'after-discard'",
        "write",
    ]
    write, flush, fua, discard, mark, last = wlog.entries
    assert (write.index, write.sector, write.nr_sectors, write.flags) == (0, 8, 2, 0)
    assert flush.is_flush and not flush.is_write and flush.nr_sectors == 0
    assert fua.is_fua and fua.is_write and not fua.is_flush
    assert discard.is_discard and discard.is_write and discard.flags == DISCARD
    assert mark.is_mark and mark.mark == "after-discard" and not mark.is_write
    # Offsets follow the layout: superblock, then header sector + data sectors.
    assert write.data_offset == 2 * 512
    assert fua.data_offset == write.data_offset + 2 * 512 + 512 + 512
    assert last.data_offset == discard.data_offset + 512 + 512  # no data for discard, mark
    assert wlog.data(write) == sector_bytes(0xA1, 2)
    assert wlog.data(last, first=1, count=2) == sector_bytes(0xC3, 2)
    assert wlog.data(discard) == bytes(4 * 512)
    assert (last.disk_offset, last.length) == (20 * 512, 3 * 512)


def test_4k_log_sectors(tmp_path: Path) -> None:
    w = LogWriter(sector_size=4096)
    w.write(5, sector_bytes(7, 2, size=4096))
    w.flush()
    wlog = WriteLog.open(w.save(tmp_path / "log.bin"))
    assert wlog.sector_size == 4096
    assert wlog[0].disk_offset == 5 * 4096 and wlog[0].data_offset == 8192
    assert wlog.data(wlog[0]) == sector_bytes(7, 2, size=4096)


def test_not_a_log(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"just some text that is long enough for a superblock" * 20)
    with pytest.raises(HarnessConfigError) as excinfo:
        WriteLog.open(path)
    assert "not a dm-log-writes log (magic" in one_line_error(excinfo)


def test_a_disk_image_is_not_a_log(tmp_path: Path) -> None:
    # An MBR's first bytes are often zeros: that must not pass for an unwritten superblock.
    mbr = bytearray(4096)
    mbr[446:462] = struct.pack("<B3xBxxxII", 0, 0x83, 2048, 4096)
    mbr[510:512] = b"\x55\xaa"
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(mbr))
    with pytest.raises(HarnessConfigError, match="not a dm-log-writes log"):
        WriteLog.open(path)
    path.write_bytes(bytes(8192))
    with pytest.raises(HarnessConfigError, match="sector 0 is zeros and no entry follows"):
        WriteLog.open(path)


def test_too_short(tmp_path: Path) -> None:
    path = tmp_path / "log.bin"
    path.write_bytes(b"\x72\x68\x73\x77")
    with pytest.raises(HarnessConfigError, match="too short for a superblock"):
        WriteLog.open(path)


def test_unsupported_version(tmp_path: Path) -> None:
    path = sample_log().save(tmp_path / "log.bin", version=2)
    with pytest.raises(HarnessConfigError) as excinfo:
        WriteLog.open(path)
    assert "unsupported dm-log-writes version 2" in one_line_error(excinfo)


def test_truncated_counted_entry(tmp_path: Path) -> None:
    raw = sample_log().render()
    path = tmp_path / "log.bin"
    path.write_bytes(raw[:-700])  # cut inside the data of the last (counted) entry
    with pytest.raises(HarnessConfigError) as excinfo:
        WriteLog.open(path)
    text = one_line_error(excinfo)
    assert "truncated or damaged entry 5 of 6" in text and "data cut" in text


def test_entry_count_mismatch(tmp_path: Path) -> None:
    path = sample_log().save(tmp_path / "log.bin", counted=9)
    with pytest.raises(HarnessConfigError) as excinfo:
        WriteLog.open(path)
    assert "superblock counts 9 entries, the file holds 6" in one_line_error(excinfo)


def test_unknown_flags_in_a_counted_entry(tmp_path: Path) -> None:
    w = sample_log()
    w.raw_entry(1, 1, 0x100, sector_bytes(1))
    with pytest.raises(HarnessConfigError, match=r"entry 6 of 7 .* unknown flags 0x100"):
        WriteLog.open(w.save(tmp_path / "log.bin"))


def test_power_cut_tail_after_the_last_flush(tmp_path: Path, caplog) -> None:
    # QEMU updates the superblock only at a flush: entries 2.. are not counted,
    # and a kill mid-write leaves the last one half written.
    w = sample_log()
    w.write(30, sector_bytes(0xDD, 4))
    raw = w.render(counted=2)
    path = tmp_path / "log.bin"
    path.write_bytes(raw[:-1000])
    wlog = WriteLog.open(path)
    assert len(wlog) == 6 and wlog.superblock_entries == 2 and wlog.tail_entries == 4
    assert wlog.dropped_tail_bytes == 512 + 4 * 512 - 1000
    assert wlog.data(wlog[5]) == sector_bytes(0xC3, 3)
    assert "ignoring the last 1560 bytes" in caplog.text
    assert "4 complete entries after it trusted" in wlog.describe()


def test_tail_stops_at_garbage(tmp_path: Path) -> None:
    w = sample_log()
    w.raw_entry(1, 1, 0x100, sector_bytes(1))  # stale or torn header: not trusted
    w.write(2, sector_bytes(2))
    wlog = WriteLog.open(w.save(tmp_path / "log.bin", counted=6))
    assert len(wlog) == 6 and wlog.dropped_tail_bytes == 4 * 512


def test_superblock_never_written(tmp_path: Path) -> None:
    # Killed before the first flush: sector 0 is still a hole.
    w = LogWriter()
    w.write(4, sector_bytes(9, 2))
    raw = bytearray(w.render())
    raw[:512] = bytes(512)
    path = tmp_path / "log.bin"
    path.write_bytes(bytes(raw))
    wlog = WriteLog.open(path)
    assert not wlog.superblock_written and len(wlog) == 1 and wlog.tail_entries == 1
    assert wlog.data(wlog[0]) == sector_bytes(9, 2)


def test_empty_file_is_an_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "log.bin"
    path.touch()
    wlog = WriteLog.open(path)
    assert len(wlog) == 0 and not wlog.superblock_written


def test_write_past_the_end_of_the_disk(tmp_path: Path) -> None:
    w = LogWriter()
    w.write(100, sector_bytes(1, 2))
    wlog = WriteLog.open(w.save(tmp_path / "log.bin"))
    wlog.check_fits(102 * 512)
    with pytest.raises(HarnessConfigError) as excinfo:
        wlog.check_fits(101 * 512)
    assert "entry 0 writes sectors 100..101, past the end" in one_line_error(excinfo)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HarnessConfigError, match="cannot read write log"):
        WriteLog.open(tmp_path / "nope.bin")


def test_large_log_is_streamed(tmp_path: Path) -> None:
    """A 160 MB log (sparse on disk) is opened and read without holding it in memory."""
    sectors = 320_000
    w = LogWriter()
    w.flush()
    raw = w.render(counted=2)  # the flush, then one write of `sectors` zero sectors
    header = struct.pack("<QQQQ", 0, sectors, 0, 0).ljust(512, b"\0")
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        f.write(raw + header)
        f.truncate(len(raw) + 512 + sectors * 512)
    tracemalloc.start()
    try:
        wlog = WriteLog.open(path)
        total = sum(len(chunk) for chunk in wlog.chunks(wlog[1]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(wlog) == 2 and total == sectors * 512 > 160_000_000
    assert peak < 4 << 20


def test_cli_show(tmp_path: Path, capsys) -> None:
    path = sample_log().save(tmp_path / "log.bin")
    assert main(["writelog", "show", str(path), "--limit", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: 6 entries, sector size 512; superblock counts 6"
    assert out[2].split() == ["0", "write", "8", "2"]
    assert out[3].split() == ["1", "flush", "-", "-"]
    assert out[4].split() == ["2", "write+fua", "3", "1"]
    assert out[-1] == "… 3 more entries"


def test_cli_show_bad_log_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "log.bin"
    path.write_bytes(bytes(range(256)) * 4)
    assert main(["writelog", "show", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ab-harness: error: ") and "\n" not in err
    assert "not a dm-log-writes log" in err
