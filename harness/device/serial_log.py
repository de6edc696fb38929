"""Record one QEMU session's serial console and cut it into one log per boot.

A single QEMU session reboots the guest several times in an A/B scenario
(update, failed boots, rollback), and its console is one byte stream. The
recorder splits that stream where the bootloader banner starts a line, so a
report can attach ``boot-03.log`` for the third boot instead of one long log.

Echoed shell commands can contain the banner text (``grep "U-Boot 20"``), so a
banner only counts at the start of a line. Feeding is incremental: each
`SerialRecorder.feed` looks at the new bytes plus, at most, the one line
start still undecided from the previous chunk.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# CSI sequences (cursor queries like ESC[6n, colours), OSC sequences (window
# titles) and two-byte escapes: noise in a tail shown in an error message.
_ANSI_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]"
)
_CR = 0x0D
_LF = 0x0A


@dataclass(frozen=True)
class BootSegment:
    """The console output of one boot: from its banner line to the next banner line.

    ``index`` is 1 for the first boot; 0 is the output before the first banner.
    ``started_at`` is the recorder's clock when the banner was complete (for
    index 0: when the first byte arrived).
    """

    index: int
    started_at: float
    text: bytes


@dataclass(eq=False)
class SerialRecorder:
    """Accumulates a console byte stream and finds the boots in it.

    ``boot_banner`` is matched at the start of a line (after an optional run of
    ``\\r``); a banner longer than ``max_banner_len`` bytes is not recognised.
    """

    boot_banner: re.Pattern[bytes]
    clock: Callable[[], float] = time.monotonic
    max_banner_len: int = field(default=256, kw_only=True)

    _stream: bytearray = field(default_factory=bytearray, init=False, repr=False)
    # (offset of the banner's line start, clock time the banner completed)
    _starts: list[tuple[int, float]] = field(default_factory=list, init=False, repr=False)
    _first_data_at: float | None = field(default=None, init=False, repr=False)
    # Offset of the earliest line start not yet decided to be or not be a
    # banner; None while inside a decided line, waiting for its newline.
    _undecided: int | None = field(default=0, init=False, repr=False)
    # Where to resume looking for a newline when _undecided is None.
    _newline_from: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.boot_banner.pattern, bytes):
            raise TypeError("boot_banner must be a bytes pattern, e.g. re.compile(rb'U-Boot ')")

    def feed(self, data: bytes) -> None:
        """Append ``data``, the next chunk read from the console, and record any boot it starts.

        Chunks may split anywhere, including inside a banner; the boot is then
        timestamped with the chunk that completed the banner.
        """
        if not data:
            return
        now = self.clock()
        if self._first_data_at is None:
            self._first_data_at = now
        self._stream += data
        self._scan(now)

    @property
    def decided(self) -> int:
        """Length of the stream's head whose boot is known: no banner still to
        arrive can move a boundary inside it (a live log writes up to here)."""
        return self._undecided if self._undecided is not None else len(self._stream)

    @property
    def size(self) -> int:
        """Bytes received so far."""
        return len(self._stream)

    def boot_starts(self) -> list[int]:
        """Byte offsets at which boots 1, 2, ... start."""
        return [offset for offset, _ in self._starts]

    def raw(self, start: int, end: int) -> bytes:
        """Bytes start..end of the stream as received."""
        return bytes(self._stream[start:end])

    def boots(self) -> list[BootSegment]:
        """Return the boots seen so far, in order; the last one runs to the end of the stream.

        Output before the first banner is returned as segment 0 if there is any.
        """
        stream = bytes(self._stream)
        segments: list[BootSegment] = []
        first = self._starts[0][0] if self._starts else len(stream)
        if first > 0 and self._first_data_at is not None:
            segments.append(BootSegment(0, self._first_data_at, stream[:first]))
        bounds = [offset for offset, _ in self._starts] + [len(stream)]
        for number, (offset, started_at) in enumerate(self._starts, start=1):
            segments.append(BootSegment(number, started_at, stream[offset : bounds[number]]))
        return segments

    def tail(self, lines: int = 20) -> str:
        """Return the last ``lines`` lines of the stream as readable text.

        Undecodable bytes become U+FFFD, carriage returns and ANSI escape
        sequences are removed; an unterminated last line counts as a line.
        """
        if lines <= 0:
            return ""
        # Decode only the end of the stream: the tail is asked for in error
        # messages of long sessions, and lines + 1 newlines back is enough.
        start = len(self._stream)
        for _ in range(lines + 1):
            start = self._stream.rfind(b"\n", 0, start)
            if start < 0:
                break
        chunk = bytes(self._stream[start + 1 :])
        text = _ANSI_ESCAPE.sub("", chunk.decode(errors="replace")).replace("\r", "")
        split = text.split("\n")
        if split and split[-1] == "":
            split.pop()
        return "\n".join(split[-lines:])

    def write(self, directory: Path) -> list[Path]:
        """Write the logs into ``directory`` (created if needed) and return their paths.

        ``serial.log`` holds the raw stream, byte for byte; ``pre-boot.log``
        (only if there was non-blank output before the first banner) and ``boot-01.log``,
        ``boot-02.log``, ... hold each segment as UTF-8 text with line ends
        normalised to ``\\n``. Existing files of those names are overwritten,
        so calling this again after more output refreshes them.
        """
        directory.mkdir(parents=True, exist_ok=True)
        whole = directory / "serial.log"
        whole.write_bytes(bytes(self._stream))
        written = [whole]
        for segment in self.boots():
            if segment.index == 0 and not segment.text.strip():
                continue  # blank lines while the UART settles: nothing to read
            name = "pre-boot.log" if segment.index == 0 else f"boot-{segment.index:02d}.log"
            path = directory / name
            path.write_bytes(normalise_newlines(segment.text).encode())
            written.append(path)
        log.debug("wrote %d console logs to %s", len(written), directory)
        return written

    def _scan(self, now: float) -> None:
        stream = self._stream
        while True:
            if self._undecided is None:
                newline = stream.find(b"\n", self._newline_from)
                if newline < 0:
                    self._newline_from = len(stream)
                    return
                self._undecided = newline + 1
            line_start = self._undecided
            text_start = line_start
            while text_start < len(stream) and stream[text_start] == _CR:
                text_start += 1
            window_end = min(len(stream), text_start + self.max_banner_len)
            newline = stream.find(b"\n", line_start, window_end)
            if self.boot_banner.match(stream, text_start, window_end):
                self._starts.append((line_start, now))
                log.debug("boot %d starts at byte %d", len(self._starts), line_start)
            elif newline < 0 and window_end - text_start < self.max_banner_len:
                # The line is still short and open: the banner may yet arrive
                # in the next chunk, so decide this line start then.
                return
            self._undecided = None
            self._newline_from = line_start if newline < 0 else newline


def normalise_newlines(data: bytes) -> str:
    # A pty turns the guest's \r\n into \r\r\n; some UARTs send \n\r.
    text = data.decode(errors="replace")
    return re.sub(r"\r*\n\r?", "\n", text)
