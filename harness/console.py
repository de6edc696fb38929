"""Tee a labgrid console's input into a sink (the per-boot serial log)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def tee_console(console: Any, sink: Callable[[bytes], None]) -> None:
    """Hand every chunk the console reads to `sink`, before expect() sees it.

    labgrid has no hook for this, and its expect buffer drops what it has
    matched, so the raw reads are the only complete record of a boot. The
    wrapper is per instance, which works for QEMU and serial-port consoles.
    """
    read = console._read

    def recording_read(*args: Any, **kwargs: Any) -> Any:
        data = read(*args, **kwargs)
        if data:
            sink(bytes(data))
        return data

    console._read = recording_read
