"""Crash states from a write log: exact bytes per model, torn writes, seeds, disks, real QEMU."""

from __future__ import annotations

import filecmp
import json
import random
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pexpect
import pytest
from dmlog import LogWriter, sector_bytes

from harness.cli import main
from harness.crashsweep.crashdisk import METHODS, materialize
from harness.crashsweep.crashstate import (
    CrashState,
    TornWrite,
    crash_states,
    extents,
    fingerprint,
    ordered_state,
)
from harness.crashsweep.disklayout import DiskLayout, names_from_manifest
from harness.crashsweep.writelog import WriteLog
from harness.envformat import parse_env_copies
from harness.errors import HarnessConfigError

S = 512
DISK_SECTORS = 64

needs_qemu_img = pytest.mark.skipif(
    shutil.which("qemu-img") is None or shutil.which("qemu-io") is None,
    reason="qemu-img/qemu-io not installed (Debian: qemu-utils)",
)


def make_base(path: Path) -> Path:
    """64 sectors; sector i is filled with byte i."""
    path.write_bytes(b"".join(bytes([i]) * S for i in range(DISK_SECTORS)))
    return path


def make_log(path: Path) -> WriteLog:
    w = LogWriter()
    w.write(1, sector_bytes(0x61))  # 0 a
    w.write(2, sector_bytes(0x62, 4))  # 1 b: sectors 2-5
    w.flush()  # 2
    w.write(1, sector_bytes(0x63))  # 3 c
    w.write(10, sector_bytes(0x64), fua=True)  # 4 d, durable by itself
    w.write(2, sector_bytes(0x65, 2))  # 5 e: sectors 2-3, over b
    w.discard(30, 2)  # 6
    w.write(40, sector_bytes(0x66, 4))  # 7 f: sectors 40-43
    return WriteLog.open(w.save(path))


def disk(**sectors: bytes) -> bytes:
    """The base with some sectors replaced: disk(s1=b"a", s2_5=b"b") style, one byte per sector."""
    out = bytearray(make_bytes())
    for key, fill in sectors.items():
        first, _, last = key[1:].partition("_")
        for sector in range(int(first), int(last or first) + 1):
            out[sector * S : (sector + 1) * S] = fill * S
    return bytes(out)


def make_bytes() -> bytes:
    return b"".join(bytes([i]) * S for i in range(DISK_SECTORS))


def read_disk(path: Path, fmt: str) -> bytes:
    if fmt == "raw":
        return path.read_bytes()
    raw = path.with_suffix(".raw")
    subprocess.run(
        ["qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(raw)],
        check=True,
        timeout=60,
    )
    return raw.read_bytes()


def reference(base: bytes, wlog: WriteLog, state: CrashState) -> bytes:
    """The test's own model of a state: apply kept writes, and the torn prefix, in log order."""
    out = bytearray(base)
    for entry in wlog.entries[: state.index]:
        count = entry.nr_sectors if entry.index in state.kept else 0
        if state.torn is not None and state.torn.index == entry.index:
            count = state.torn.sectors_kept
        if not count:
            continue
        data = bytes(count * S) if entry.is_discard else wlog.data(entry)[: count * S]
        out[entry.sector * S : (entry.sector + count) * S] = data
    return bytes(out)


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, WriteLog]:
    return make_base(tmp_path / "base.img"), make_log(tmp_path / "log.bin")


@needs_qemu_img
@pytest.mark.parametrize("method", METHODS)
def test_ordered_states_exact_bytes(tiny, tmp_path: Path, method) -> None:
    base, wlog = tiny
    expected = {
        0: make_bytes(),
        2: disk(s1=b"a", s2_5=b"b"),
        5: disk(s1=b"c", s2_5=b"b", s10=b"d"),
        8: disk(s1=b"c", s2_3=b"e", s4_5=b"b", s10=b"d", s30_31=b"\0", s40_43=b"f"),
    }
    for k, want in expected.items():
        state = ordered_state(wlog, k)
        assert state.label == f"k={k} ordered" and state.torn is None
        out = materialize(base, wlog, state, tmp_path / f"k{k}.{method}", method=method)
        assert read_disk(out.path, out.format) == want, state.label
    assert base.read_bytes() == make_bytes()  # the base is never written


@needs_qemu_img
@pytest.mark.parametrize("method", METHODS)
def test_volatile_cache_states_exact_bytes(tiny, tmp_path: Path, method) -> None:
    base, wlog = tiny
    states = crash_states(wlog, 8, "volatile-cache", seed=3)
    labels = [s.label for s in states]
    assert labels[0] == "k=8 volatile-cache all-lost (4 unflushed)"
    assert labels[1] == "k=8 volatile-cache all-kept (4 unflushed)"
    # Four volatile writes (3, 5, 6, 7): every one of the 16 subsets is a state.
    untorn = {s.kept for s in states if s.torn is None}
    assert len(untorn) == 16 and all({0, 1, 4} <= kept for kept in untorn)
    by_label = {s.label: s for s in states}
    expected = {
        "k=8 volatile-cache all-lost (4 unflushed)": disk(s1=b"a", s2_5=b"b", s10=b"d"),
        "k=8 volatile-cache all-kept (4 unflushed)": disk(
            s1=b"c", s2_3=b"e", s4_5=b"b", s10=b"d", s30_31=b"\0", s40_43=b"f"
        ),
        # The later write lost, the earlier one it overwrote shows again.
        "k=8 volatile-cache subset kept {#3} of 4": disk(s1=b"c", s2_5=b"b", s10=b"d"),
        "k=8 volatile-cache subset kept {#5,#7} of 4": disk(
            s1=b"a", s2_3=b"e", s4_5=b"b", s10=b"d", s40_43=b"f"
        ),
    }
    for label, want in expected.items():
        out = materialize(base, wlog, by_label[label], tmp_path / f"s.{method}", method=method)
        assert read_disk(out.path, out.format) == want, label
    for i, state in enumerate(states):
        out = materialize(base, wlog, state, tmp_path / f"{i}.{method}", method=method)
        assert read_disk(out.path, out.format) == reference(make_bytes(), wlog, state), state.label


@needs_qemu_img
def test_torn_write_keeps_a_sector_prefix(tiny, tmp_path: Path) -> None:
    base, wlog = tiny
    torn = [s for s in crash_states(wlog, 8, "volatile-cache", seed=3) if s.torn]
    assert torn, "a window with multi-sector writes has torn variants"
    for state in torn:
        assert state.torn is not None
        victim = wlog[state.torn.index]
        assert 0 < state.torn.sectors_kept < victim.nr_sectors
        assert state.torn.index not in state.kept
        assert f"#{victim.index} {state.torn.sectors_kept}/{victim.nr_sectors} sectors" in (
            state.label
        )
    # Pin one down exactly: write 7 (f over 40-43) torn after 3 sectors, 5 kept over 1's b.
    state = CrashState(8, "volatile-cache", frozenset({0, 1, 4, 5}), TornWrite(7, 3), "t")
    for method in METHODS:
        out = materialize(base, wlog, state, tmp_path / f"torn.{method}", method=method)
        want = disk(s1=b"a", s2_3=b"e", s4_5=b"b", s10=b"d", s40_42=b"f")
        assert read_disk(out.path, out.format) == want


def test_seeded_states_repeat(tmp_path: Path) -> None:
    w = LogWriter()
    w.flush()
    for i in range(7):
        w.write(2 + 3 * i, sector_bytes(i, 3))
    wlog = WriteLog.open(w.save(tmp_path / "log.bin"))

    def keys(seed: int) -> list[tuple[str, frozenset[int], object]]:
        return [
            (s.label, s.kept, s.torn) for s in crash_states(wlog, 8, "volatile-cache", seed=seed)
        ]

    assert keys(1) == keys(1)
    assert keys(1) != keys(2)
    labels = [k[0] for k in keys(1)]
    assert any("random#" in label for label in labels) and any("torn#" in label for label in labels)


def test_ordered_has_one_state_and_index_is_checked(tiny) -> None:
    _, wlog = tiny
    assert [s.label for s in crash_states(wlog, 3, "ordered")] == ["k=3 ordered"]
    assert crash_states(wlog, 3, "volatile-cache")[0].label == (
        "k=3 volatile-cache (no unflushed writes)"
    )
    with pytest.raises(HarnessConfigError, match=r"crash index 9 is past the end .*0\.\.8"):
        ordered_state(wlog, 9)
    with pytest.raises(HarnessConfigError, match="unknown crash model"):
        crash_states(wlog, 3, "lossy")  # type: ignore[arg-type]


@needs_qemu_img
def test_fingerprint_classes_match_region_bytes(tiny, tmp_path: Path) -> None:
    base, wlog = tiny
    regions = [(1 * S, S), (40 * S, 2 * S)]
    by_print: dict[str, set[bytes]] = defaultdict(set)
    by_bytes: dict[bytes, set[str]] = defaultdict(set)
    for i, state in enumerate(crash_states(wlog, 8, "volatile-cache", seed=3)):
        out = materialize(base, wlog, state, tmp_path / f"{i}.img", method="copy")
        raw = out.path.read_bytes()
        seen = b"".join(raw[a : a + n] for a, n in regions)
        key = fingerprint(base, wlog, state, regions)
        by_print[key].add(seen)
        by_bytes[seen].add(key)
    assert all(len(v) == 1 for v in by_print.values())  # one fingerprint, one content
    assert all(len(v) == 1 for v in by_bytes.values())  # and the other way round
    assert len(by_print) > 2


@needs_qemu_img
def test_no_full_copy(tmp_path: Path) -> None:
    base = tmp_path / "big.img"
    with base.open("wb") as f:
        for _ in range(8):
            f.write(bytes(range(256)) * 4096)  # 8 MiB of data, allocated
        f.truncate(16 << 20)  # and an 8 MiB hole
    w = LogWriter()
    w.write(100, sector_bytes(7, 8))
    w.write(20_000, sector_bytes(9, 2))  # into the hole
    wlog = WriteLog.open(w.save(tmp_path / "log.bin"))
    state = ordered_state(wlog, 2)
    base_blocks = base.stat().st_blocks
    overlay = materialize(base, wlog, state, tmp_path / "out.qcow2")
    assert overlay.format == "qcow2" and overlay.path.stat().st_blocks < base_blocks // 8
    copy = materialize(base, wlog, state, tmp_path / "out.raw", method="copy")
    assert copy.path.stat().st_blocks < base_blocks + 2048  # the hole stays a hole
    assert read_disk(overlay.path, "qcow2") == copy.path.read_bytes()
    assert copy.path.read_bytes()[20_000 * S : 20_002 * S] == b"\x09" * 1024


def test_materialize_bad_input(tiny, tmp_path: Path) -> None:
    base, wlog = tiny
    with pytest.raises(HarnessConfigError, match="base disk image not found"):
        materialize(tmp_path / "nope.img", wlog, ordered_state(wlog, 1), tmp_path / "o")
    w = LogWriter()
    w.write(DISK_SECTORS, sector_bytes(1))
    past = WriteLog.open(w.save(tmp_path / "past.bin"))
    with pytest.raises(HarnessConfigError, match="past the end of the 32768-byte disk"):
        materialize(base, past, ordered_state(past, 1), tmp_path / "o")
    foreign = CrashState(20, "ordered", frozenset(), None, "k=20 ordered")
    with pytest.raises(HarnessConfigError, match="past the end of"):
        materialize(base, wlog, foreign, tmp_path / "o")


@needs_qemu_img
def test_cli_state(tiny, tmp_path: Path, capsys) -> None:
    base, wlog = tiny
    out = tmp_path / "crash.qcow2"
    argv = ["writelog", "state", str(wlog.path), str(base), "--index", "8"]
    assert main([*argv, "--model", "volatile-cache", "--pick", "0", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "*   0  k=8 volatile-cache all-lost (4 unflushed)" in text
    assert read_disk(out, "qcow2") == disk(s1=b"a", s2_5=b"b", s10=b"d")
    assert main([*argv, "--model", "ordered", "--pick", "5", "--out", str(out)]) == 1
    assert "--pick 5: index 8 has 1 ordered states" in capsys.readouterr().err


# --- real QEMU --------------------------------------------------------------

PROMPT = "ab-shell# "


@pytest.mark.qemu
@needs_qemu_img
@pytest.mark.skipif(shutil.which("qemu-system-aarch64") is None, reason="no qemu-system-aarch64")
def test_real_boot_log_rebuilds_the_final_disk(tmp_path: Path) -> None:
    from harness.images import ensure_image

    image = ensure_image("arm64-uboot")
    base = tmp_path / "base.img"
    subprocess.run(["cp", "--sparse=always", str(image.file("disk")), str(base)], check=True)
    live = tmp_path / "disk.img"
    shutil.copyfile(base, live)
    log_path = tmp_path / "log.bin"
    log_path.touch()  # QEMU does not truncate a log: start from an empty file
    blockdev = (
        "driver=blklogwrites,node-name=disk0,file.driver=raw,file.file.driver=file,"
        f"file.file.filename={live},log.driver=file,log.filename={log_path},log-sector-size=512"
    )
    argv = [
        *("-M", "virt", "-cpu", "cortex-a57", "-m", "512M", "-nographic", "-nic", "none"),
        *("-bios", str(image.file("bios"))),
        *("-drive", f"if=pflash,unit=1,readonly=on,format=raw,file={image.file('factory_env')}"),
        *("-blockdev", blockdev, "-device", "virtio-blk-pci,drive=disk0"),
    ]
    started = time.monotonic()
    qemu = pexpect.spawn("qemu-system-aarch64", argv, timeout=60, encoding="utf-8",
                         codec_errors="replace")  # fmt: skip
    qemu.logfile_read = (tmp_path / "console.log").open("w")
    try:
        qemu.expect_exact(PROMPT)
        qemu.sendline("fw_setenv ab_test 1; sync; echo WL-$((40+2))")
        qemu.expect_exact("WL-42", timeout=30)
        qemu.expect_exact(PROMPT, timeout=30)
        qemu.send("\x01x")  # QEMU monitor escape: quit
        qemu.expect(pexpect.EOF, timeout=30)
    finally:
        qemu.terminate(force=True)
        qemu.logfile_read.close()
    assert time.monotonic() - started < 30

    wlog = WriteLog.open(log_path)
    assert any(e.is_flush for e in wlog) and wlog.dropped_tail_bytes == 0
    manifest = json.loads((image.directory / "manifest.json").read_text())
    layout = DiskLayout.read(base, names_from_manifest(manifest))
    env_files = {f"boot: {name}" for name in manifest["env"]["files"]}
    env_writes = [
        e for e in wlog if e.is_write and layout.describe_range(e.sector, e.nr_sectors) in env_files
    ]
    assert env_writes, [layout.describe_range(e.sector, e.nr_sectors) for e in wlog if e.is_write]

    final = ordered_state(wlog, len(wlog))
    overlay = materialize(base, wlog, final, tmp_path / "final.qcow2")
    compare = ["qemu-img", "compare", "-q", "-f", "qcow2", "-F", "raw"]
    same = subprocess.run([*compare, str(overlay.path), str(live)], check=False, timeout=60)
    assert same.returncode == 0
    copy = materialize(base, wlog, final, tmp_path / "final.raw", method="copy")
    assert filecmp.cmp(copy.path, live, shallow=False)
    assert not filecmp.cmp(base, live, shallow=False)  # the guest did change the disk

    # Just before the first env write the variable is not there; after the last it is.
    size = manifest["env"]["size"]
    before = materialize(base, wlog, ordered_state(wlog, env_writes[0].index), tmp_path / "b.raw",
                         method="copy")  # fmt: skip
    assert "ab_test" not in env_vars(before.path, manifest, size)
    assert env_vars(copy.path, manifest, size)["ab_test"] == "1"


def env_vars(disk_path: Path, manifest: dict, size: int) -> dict[str, str]:
    from harness.images.diskimage import read_partition_files

    env = manifest["env"]
    blobs = read_partition_files(disk_path, env["partition"], env["files"])
    return dict(parse_env_copies(blobs, str(disk_path), size=size).vars)


def test_shared_prefixes_give_every_state_its_own_exact_bytes(tmp_path: Path) -> None:
    """The ranges of a fully kept prefix are shared between states (asked in any
    order, back and forth): each state's bytes still match the test's own model."""
    rng = random.Random(7)
    w = LogWriter()
    for n in range(300):
        if rng.random() < 0.1:
            w.flush()
        elif rng.random() < 0.05:
            w.discard(rng.randrange(DISK_SECTORS - 2), 2)
        else:
            count = rng.choice((1, 1, 2, 4))
            w.write(rng.randrange(DISK_SECTORS - count), sector_bytes(n % 251 + 1, count))
    wlog = WriteLog.open(w.save(tmp_path / "log.bin"))
    base = make_base(tmp_path / "base.img")
    states = [ordered_state(wlog, k) for k in range(0, len(wlog.entries) + 1, 7)]
    for k in range(20, len(wlog.entries), 37):
        states += crash_states(wlog, k, "volatile-cache", seed=k)
    rng.shuffle(states)
    for state in states:
        got = bytearray(base.read_bytes())
        for ext in extents(wlog, state):
            data = bytes(ext.length) if ext.log_offset is None else _log_bytes(wlog, ext)
            got[ext.disk_offset : ext.disk_offset + ext.length] = data
        assert bytes(got) == reference(base.read_bytes(), wlog, state), state.label


def _log_bytes(wlog: WriteLog, ext) -> bytes:
    with wlog.path.open("rb") as f:
        f.seek(ext.log_offset)
        return f.read(ext.length)
