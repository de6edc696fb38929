"""Console logs written while the device talks, one file per boot.

The recorder (`harness.device.serial_log`) keeps the whole stream and writes the
final logs when a test ends; a person watching a long or hanging test, or
a run that is killed outright, needs them before that. `LiveConsoleLog`
is a console hook: after each chunk it appends the new bytes to
``serial.log`` and the new complete lines to the current ``boot-NN.log``
(``pre-boot.log`` before the first banner), flushed at once, so
``tail -f ab-results/<test>/boot-02.log`` follows a boot as it happens.
The end-of-test write replaces them with the same content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from harness.device.serial_log import SerialRecorder, normalise_newlines


@dataclass(eq=False)
class LiveConsoleLog:
    """Appends what `recorder` has decided so far into `directory`; call after each feed."""

    recorder: SerialRecorder
    directory: Path
    _raw_done: int = field(default=0, init=False)
    _text_done: int = field(default=0, init=False)
    _whole: BinaryIO | None = field(default=None, init=False, repr=False)
    _boot: BinaryIO | None = field(default=None, init=False, repr=False)
    _boot_index: int = field(default=-1, init=False)

    def __call__(self, _data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        stream_end = self.recorder.decided
        if self._whole is None:
            self._whole = (self.directory / "serial.log").open("wb")
        total = self.recorder.size
        self._whole.write(self.recorder.raw(self._raw_done, total))
        self._whole.flush()
        self._raw_done = total
        starts = self.recorder.boot_starts()
        # Write complete lines only, each into the boot it belongs to.
        while self._text_done < stream_end:
            index = sum(1 for s in starts if s <= self._text_done)
            next_start = next((s for s in starts if s > self._text_done), stream_end)
            end = min(next_start, stream_end)
            chunk = self.recorder.raw(self._text_done, end)
            if end == stream_end:
                last_newline = chunk.rfind(b"\n")
                if last_newline < 0:
                    return
                chunk = chunk[: last_newline + 1]
            self._write_boot(index, chunk)
            self._text_done += len(chunk)

    def _write_boot(self, index: int, chunk: bytes) -> None:
        if index == 0 and self._boot_index != 0 and not chunk.strip():
            return  # blank lines while the UART settles: no pre-boot.log (as the final write)
        if index != self._boot_index:
            if self._boot is not None:
                self._boot.close()
            name = "pre-boot.log" if index == 0 else f"boot-{index:02d}.log"
            self._boot = (self.directory / name).open("wb")
            self._boot_index = index
        assert self._boot is not None
        self._boot.write(normalise_newlines(chunk).encode())
        self._boot.flush()

    def close(self) -> None:
        """Close the files (the final write at the end of the test replaces them)."""
        for handle in (self._whole, self._boot):
            if handle is not None:
                handle.close()
        self._whole = self._boot = None
