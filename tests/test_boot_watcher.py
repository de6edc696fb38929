"""BootWatcher against a real byte stream: a console transcript written into a
pipe by a thread, read back through pexpect, boot by boot.

Nothing of the watcher is mocked: the only stand-in is the console, a pipe
behind labgrid's `expect(patterns, timeout) -> (index, before, match, after)`.
"""

from __future__ import annotations

import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import pytest
from pexpect.fdpexpect import fdspawn

from harness.bootloaders import LINE_START, BootEnv, UBootFileEnv
from harness.device.boot import BootRecord, BootWatcher
from harness.device.serial_log import SerialRecorder
from harness.errors import DeviceError
from harness.judge.oracle import ContractJudge
from harness.targets.target import DEFAULT_READY_MARKER, EnvLocation

MARKERS = UBootFileEnv(EnvLocation(1, ("uboot.env", "uboot-redund.env"), 0x4000)).markers
# Built the way the plugin builds it from the target's ready_marker.
READY = re.compile(LINE_START + DEFAULT_READY_MARKER.encode())

# One chunk is one write into the pipe; the console sees CRLF like a UART's.
Transcript = Sequence[bytes]


def uboot(slot: str, part: int, bootcount: str, upgrade: int) -> list[bytes]:
    return [
        b"\r\r\nU-Boot 2023.01+dfsg-2+deb12u3 (Jun 22 2026 - 08:38:07 +0000)\r\r\n",
        b"DRAM:  512 MiB\r\r\nLoading Environment from Flash... OK\r\r\n",
        b"Hit any key to stop autoboot:  0 \r\r\n## Executing script at 40200000\r\r\n",
        f"ab-boot: slot={slot} part={part} bootcount={bootcount} upgrade_available={upgrade}"
        " bootlimit=1 env=a\r\r\n".encode(),
        b"\r\r\nStarting kernel ...\r\r\n\r\r\n",
    ]


def linux(slot: str, version: str, *, healthy: bool) -> list[bytes]:
    root = {"A": 2, "B": 3}[slot]
    lines = [
        f"ab-init: slot={slot} version={version} root=/dev/vda{root}\r\n".encode(),
        b"ab-health: ok 10-boot-env\r\n",
    ]
    if healthy:
        return [
            *lines,
            b"ab-health: PASS\r\n",
            f"ab-init: ready slot={slot} version={version}\r\n".encode(),
        ]
    return [*lines, b"ab-health: FAILED: 50-app\r\n", b"ab-init: rebooting\r\n"]


# An update to B that fails its health check; U-Boot then falls back to A.
ROLLBACK: Transcript = [
    *uboot("B", 3, "1", 1),
    *linux("B", "2", healthy=False),
    *uboot("A", 2, "2", 1),
    *linux("A", "1", healthy=True),
]


class PipeConsole:
    """labgrid's console expect API over a pexpect fdspawn on a real pipe."""

    def __init__(self, fd: int, sink: Callable[[bytes], None]) -> None:
        self._spawn = _TeeSpawn(fd, sink)

    def expect(
        self, patterns: list[re.Pattern[bytes]], timeout: float
    ) -> tuple[int, bytes, re.Match[bytes], bytes]:
        index = self._spawn.expect(patterns, timeout=timeout)
        return index, self._spawn.before, self._spawn.match, self._spawn.after


class _TeeSpawn(fdspawn):  # type: ignore[misc]
    """fdspawn that hands every read to the serial recorder, like harness.device.console."""

    def __init__(self, fd: int, sink: Callable[[bytes], None]) -> None:
        super().__init__(fd)
        self._sink = sink

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> bytes:
        data: bytes = super().read_nonblocking(size, timeout)
        self._sink(data)
        return data


@dataclass
class Device:
    """The far end of the console: a thread writing a transcript into the pipe."""

    console: PipeConsole
    watcher: BootWatcher
    _write_fd: int
    _threads: list[threading.Thread]

    def play(self, chunks: Transcript, *, gap_s: float = 0.005) -> None:
        """Start writing chunks (a short pause before each); the pipe stays open."""

        def run() -> None:
            for chunk in chunks:
                time.sleep(gap_s)
                os.write(self._write_fd, chunk)

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)


@pytest.fixture
def device() -> Iterator[Device]:
    read_fd, write_fd = os.pipe()
    recorder = SerialRecorder(MARKERS.banner)
    console = PipeConsole(read_fd, recorder.feed)  # the tail in errors is the real stream
    watcher = BootWatcher(console, MARKERS, READY, tail=lambda: recorder.tail(15))
    dev = Device(console, watcher, write_fd, [])
    try:
        yield dev
    finally:
        dev.join()
        os.close(write_fd)
        os.close(read_fd)


def summary(boots: Sequence[BootRecord]) -> list[tuple[object, ...]]:
    return [
        (b.index, b.bootloader_slot, b.bootcount, b.upgrade_available, b.health, b.ready,
         b.running_slot, b.version)
        for b in boots
    ]  # fmt: skip


def serial_tail(error: DeviceError) -> list[str]:
    """The non-empty console lines an error message carries after 'last serial lines:'."""
    _, marker, tail = error.cause.partition("\nlast serial lines:\n")
    assert marker, f"no serial tail in: {error.cause!r}"
    return [line for line in tail.splitlines() if line.strip()]


def test_rollback_transcript_is_two_boots(device: Device) -> None:
    device.play(ROLLBACK)

    boots = device.watcher.wait_ready(per_boot_s=5, max_boots=2)

    assert summary(boots) == [
        (1, "B", 1, True, "fail", False, None, None),
        (2, "A", 2, True, "pass", True, "A", "1"),
    ]
    assert boots[1].seconds_to_ready is not None and boots[1].seconds_to_ready >= 0
    assert boots[0].started_at < boots[1].started_at
    assert device.watcher.history == boots


def test_bootcount_is_read_as_decimal_like_u_boot_reads_it(device: Device) -> None:
    device.play([*uboot("B", 3, "10", 1), *linux("B", "2", healthy=True)])

    (boot,) = device.watcher.wait_ready(per_boot_s=5, max_boots=1)

    assert (boot.bootloader_slot, boot.bootcount, boot.running_slot, boot.version) == (
        "B", 10, "B", "2",
    )  # fmt: skip


def test_history_numbers_boots_across_calls(device: Device) -> None:
    device.play([*uboot("A", 2, "0", 0), *linux("A", "1", healthy=True)])
    first = device.watcher.wait_ready(per_boot_s=5, max_boots=1)
    device.join()
    device.play(ROLLBACK)

    second = device.watcher.wait_ready(per_boot_s=5, max_boots=2)

    assert [b.index for b in first] == [1]
    assert [b.index for b in second] == [2, 3]
    assert [b.running_slot for b in device.watcher.history] == ["A", None, "A"]


def test_more_boots_than_allowed_is_a_boot_loop(device: Device) -> None:
    device.play(ROLLBACK)

    with pytest.raises(DeviceError) as caught:
        device.watcher.wait_ready(per_boot_s=5, max_boots=1)

    error = caught.value
    assert error.cause.startswith(
        "device booted 2 times without becoming ready (allowed 1); slots: ['B']\n"
    )
    assert error.fix is not None and "boot loop" in error.fix
    # The tail is what the console really carried: the failed check, then boot #2.
    tail = serial_tail(error)
    assert "ab-health: FAILED: 50-app" in tail
    assert tail[-1] == "U-Boot 2023.01+dfsg-2+deb12u3 (Jun 22 2026 - 08:38:07 +0000)"


def test_silence_after_the_banner_is_a_hang_within_the_boot_timeout(device: Device) -> None:
    device.play(uboot("B", 3, "1", 1))

    started = time.monotonic()
    with pytest.raises(DeviceError) as caught:
        device.watcher.wait_ready(per_boot_s=1.0, max_boots=1)
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 2.0
    assert caught.value.cause.startswith("device hung: boot #1 not ready within 1 s\n")
    # Reported alone: no chained pexpect TIMEOUT with its buffer dump in front of it.
    assert "pexpect" not in "".join(traceback.format_exception(caught.value))
    assert serial_tail(caught.value)[-2:] == [
        "ab-boot: slot=B part=3 bootcount=1 upgrade_available=1 bootlimit=1 env=a",
        "Starting kernel ...",
    ]
    # The hung boot stays in the history with what was seen of it.
    assert summary(device.watcher.history) == [(1, "B", 1, True, None, False, None, None)]


def test_no_output_at_all_is_a_hang_at_power_on(device: Device) -> None:
    started = time.monotonic()
    with pytest.raises(DeviceError, match=r"^device hung: boot #1 \(no bootloader banner\)"):
        device.watcher.wait_ready(per_boot_s=0.5, max_boots=1)

    assert 0.5 <= time.monotonic() - started < 1.5
    assert device.watcher.history == []


def test_the_timeout_is_per_boot_not_per_call(device: Device) -> None:
    # Three boots of ~0.6 s each: 1.8 s in all, more than one boot may take.
    slow_boot = [*uboot("B", 3, "1", 1), *linux("B", "2", healthy=False)]
    chunks = [*slow_boot, *slow_boot, *uboot("A", 2, "2", 1), *linux("A", "1", healthy=True)]
    device.play(chunks, gap_s=0.6 / len(slow_boot))

    started = time.monotonic()
    boots = device.watcher.wait_ready(per_boot_s=1.0, max_boots=3)

    assert time.monotonic() - started > 1.0
    assert [(b.bootloader_slot, b.ready) for b in boots] == [
        ("B", False),
        ("B", False),
        ("A", True),
    ]


def test_fatal_bootloader_message_fails_the_boot(device: Device) -> None:
    device.play([*uboot("B", 3, "1", 1)[:3], b"ab-boot: FATAL no valid env copy\r\r\n"])

    with pytest.raises(DeviceError) as caught:
        device.watcher.wait_ready(per_boot_s=5, max_boots=3)

    assert caught.value.cause.startswith("boot #1: the bootloader gave up: no valid env copy\n")
    assert "bricked" in (caught.value.fix or "")
    assert serial_tail(caught.value)[-1] == "ab-boot: FATAL no valid env copy"


def test_kernel_panic_is_recorded_on_its_boot(device: Device) -> None:
    panic = b"[    1.234567] Kernel panic - not syncing: VFS: Unable to mount root fs\r\n"
    device.play(
        [*uboot("B", 3, "1", 1), panic, *uboot("A", 2, "2", 1), *linux("A", "1", healthy=True)]
    )

    boots = device.watcher.wait_ready(per_boot_s=5, max_boots=2)

    assert [(b.bootloader_slot, b.panicked, b.ready) for b in boots] == [
        ("B", True, False),
        ("A", False, True),
    ]


def test_banner_text_inside_an_echoed_command_is_not_a_boot(device: Device) -> None:
    # The banner text arrives in a chunk of its own, as if it began the read.
    device.play([
        *uboot("A", 2, "0", 0),
        b"ab-init: slot=A version=1 root=/dev/vda2\r\n",
        b"ab-shell# echo ",
        b"U-Boot 2023.01 was here\r\n",
        b"ab-shell# grep 'U-Boot 2023.01' /var/log/messages\r\n",
        b"ab-init: ready slot=A version=1\r\n",
    ])  # fmt: skip

    boots = device.watcher.wait_ready(per_boot_s=5, max_boots=1)

    assert summary(boots) == [(1, "A", 0, False, None, True, "A", "1")]
    assert len(device.watcher.history) == 1


def test_a_ready_line_split_across_reads_gives_the_whole_version(device: Device) -> None:
    # The version is the rest of the line, however the UART happens to chunk it.
    device.play(
        [*uboot("B", 3, "1", 1), b"ab-init: ready slot=B version=1", b"2-rc1\r\n"], gap_s=0.05
    )

    (boot,) = device.watcher.wait_ready(per_boot_s=5, max_boots=1)

    assert boot.version == "12-rc1"


def test_a_decision_line_split_inside_its_numbers_is_read_whole(device: Device) -> None:
    banner, *_ = uboot("B", 3, "1", 1)
    decision = [
        b"ab-boot: slot=B part=3 bootcount=1",
        b"0 upgrade_available=1",
        b"0 bootlimit=1 env=a\r\r\n",
    ]
    device.play([banner, *decision, *linux("B", "2", healthy=True)], gap_s=0.05)

    (boot,) = device.watcher.wait_ready(per_boot_s=5, max_boots=1)

    # "10" twice: bootcount is decimal 10; upgrade_available "10" is not "1".
    assert (boot.bootcount, boot.upgrade_available) == (10, False)


# --- a stock U-Boot: none of our lines, the env read at its own handoff ------

STOCK_UBOOT: Transcript = [
    b"\r\r\nU-Boot 2023.01+dfsg-2+deb12u3 (Jun 22 2026 - 08:38:07 +0000)\r\r\n",
    b"MMC:   sdhci@0: 0\r\r\nLoading Environment from MMC... OK\r\r\n",
    b"Saving Environment to MMC... Writing to redundant MMC(0)... OK\r\r\n",
    b"## Flattened Device Tree blob at 5edb6db0\r\r\n",
    b"\r\r\nStarting kernel ...\r\r\n\r\r\n",
]
COPIES = ("uboot.env", "uboot-redund.env")
PENDING = {"mender_boot_part": "3", "mender_boot_part_hex": "3", "upgrade_available": "1",
           "bootcount": "0", "bootlimit": "1", "mender_saveenv_canary": "1"}  # fmt: skip


@dataclass
class DiskReads:
    """The env on the disk at each read, in order (the harness's probe)."""

    envs: list[BootEnv]
    labels: list[str] = field(default_factory=list)

    def env_now(self, label: str, *, pause: bool) -> BootEnv | None:
        self.labels.append(label)
        return self.envs.pop(0)


def stock_watcher(device: Device, reads: DiskReads, *, handoff: bool = True) -> BootWatcher:
    markers = replace(MARKERS, decision=None, save=None, no_kernel=None)
    if not handoff:
        markers = replace(markers, handoff=None)
    uboot_env = UBootFileEnv(EnvLocation(1, COPIES, 0x4000))
    return replace(device.watcher, markers=markers, probe=reads,
                   judge=ContractJudge(uboot_env, {"A": 2, "B": 3}))  # fmt: skip


def test_a_stock_boot_is_judged_from_the_env_read_at_starting_kernel(device: Device) -> None:
    before = BootEnv(PENDING, "disk", {"copy": COPIES[0], "flags": "4"})
    after = BootEnv({**PENDING, "bootcount": "1"}, "disk", {"copy": COPIES[1], "flags": "5"})
    reads = DiskReads([before, after])
    watcher = stock_watcher(device, reads)
    watcher.power_on_env()
    device.play([*STOCK_UBOOT, *linux("B", "2", healthy=True)])

    (boot,) = watcher.wait_ready(per_boot_s=5, max_boots=1)

    assert reads.labels == ["before boot", "boot #1 after bootloader"]
    assert (boot.handoff, boot.env_after_at, boot.line) == (True, "handoff", None)
    assert boot.judgement is not None and boot.judgement.verdict == "ok", boot.judgement
    assert (boot.bootloader_slot, boot.bootcount, boot.upgrade_available) == ("B", 1, True)
    assert watcher.history == [boot]


def test_with_no_handoff_line_a_boot_that_reached_linux_is_counted_unjudged(
    device: Device,
) -> None:
    before = BootEnv(PENDING, "disk", {"copy": COPIES[0], "flags": "4"})
    watcher = stock_watcher(device, DiskReads([before]), handoff=False)
    watcher.power_on_env()
    device.play([*STOCK_UBOOT, *linux("B", "2", healthy=True)])

    (boot,) = watcher.wait_ready(per_boot_s=5, max_boots=1)

    assert boot.judgement is not None and boot.judgement.verdict == "unjudged"
    assert "no handoff line" in boot.judgement.reason
    assert boot.bootloader_slot == "B"  # Linux said so


def test_a_boot_seen_only_by_its_banner_is_counted_unjudged_when_the_power_goes(
    device: Device,
) -> None:
    before = BootEnv(PENDING, "disk", {"copy": COPIES[0], "flags": "4"})
    after = BootEnv({**PENDING, "bootcount": "1"}, "disk", {"copy": COPIES[1], "flags": "5"})
    watcher = stock_watcher(device, DiskReads([before, after, after]))
    watcher.power_on_env()
    device.play([*STOCK_UBOOT, *linux("B", "2", healthy=False), STOCK_UBOOT[0]])

    (tried,) = watcher.watch_boots(1, per_boot_s=5)
    watcher.power_on_env()  # the harness cut the power during boot #2

    assert tried.judgement is not None and tried.judgement.verdict == "ok", tried.judgement
    cut = watcher.history[1]
    assert cut.failure == "power cut" and cut.judgement is not None
    assert (cut.judgement.verdict, cut.judgement.reason) == (
        "unjudged",
        "the power went off during this boot: nothing after its banner was followed",
    )
