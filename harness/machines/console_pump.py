"""A QEMU serial console that is always read, whatever the test is doing.

QEMU writes the guest's UART output to the console socket one character
at a time, and when the socket is full it retries the write while holding
its global lock: the guest stops, and so does QMP. A Unix socket fills after
a few hundred such one-byte writes, so a harness that is busy elsewhere
(reading the disk with the guest paused, waiting for a QMP answer) for a
few hundred characters of output deadlocks with QEMU: the QMP answer it
waits for needs the console read, which waits for the answer. The pump
reads the socket on its own thread into memory, so QEMU never waits for
the test, and the test reads from memory as it would from the socket.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

from pexpect import TIMEOUT

_POLL_S = 0.05
_CHUNK = 65536
_JOIN_S = 2.0


class ConsolePump:
    """Drains `sock` on a daemon thread; `read` hands out what arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self._eof = False
        self._stop = threading.Event()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="qemu-console-pump", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], _POLL_S)
                if not ready:
                    continue
                data = self._sock.recv(_CHUNK)
            except BlockingIOError:
                continue
            except (OSError, ValueError):  # closed under us: the same as EOF
                data = b""
            with self._ready:
                if data:
                    self._buffer += data
                else:
                    self._eof = True
                self._ready.notify_all()
            if not data:
                return

    def read(self, max_size: int, timeout: float) -> bytes:
        """Up to `max_size` bytes that arrived; b"" once the peer closed and all
        was read; pexpect's TIMEOUT if nothing came within `timeout` seconds."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._buffer or self._eof, timeout):
                raise TIMEOUT(f"Timeout of {timeout:.2f} seconds exceeded")
            data = bytes(self._buffer[:max_size])
            del self._buffer[:max_size]
            return data

    def close(self) -> None:
        """Stop the thread at once (a shut-down socket wakes its select); the
        caller closes the socket afterwards."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(_JOIN_S)
