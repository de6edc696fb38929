"""An HTTP server for update payloads on the test host, with network faults.

Delivery by network pull works on any device with a network and a shell
(a QEMU guest through QEMU's user network, a board in a lab): the harness
serves the file, the device fetches it. The server binds the loopback (or
the address given) on a port the kernel picks, so parallel test workers
never race for one, and it answers HTTP range requests, which clients that
resume an interrupted download send.

Faults are placed in the byte stream of one file: stall for N seconds, drop
the connection, or corrupt bytes, at a byte offset, for the first `times`
requests that reach it (so a retry can succeed). Every request is logged
with what was sent and which fault fired: that log is the fault's proof.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from harness.errors import HarnessConfigError, HarnessError

log = logging.getLogger(__name__)

FaultKind = Literal["stall", "drop", "corrupt"]
_CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
# A client that stops reading must not hold a server thread forever.
_SOCKET_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 5.0


@dataclass
class NetworkFault:
    """A fault in the bytes of one served file."""

    name: str  # the served file it applies to
    kind: FaultKind
    at_byte: int
    seconds: float = 0.0  # stall: how long
    length: int = 1  # corrupt: how many bytes are flipped
    times: int = 1  # how many requests it hits before the file is served clean
    fired: int = 0


@dataclass(frozen=True)
class Served:
    """One request, as the server answered it."""

    name: str
    status: int
    first_byte: int
    bytes_sent: int
    fault: str | None  # "stall 2.0 s at 1048576", "drop at ...", "corrupt 16 B at ..."
    seconds: float


@dataclass
class _State:
    files: Mapping[str, Path]
    faults: list[NetworkFault] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def take_fault(self, name: str, first: int, last: int) -> NetworkFault | None:
        """The first armed fault of `name` inside [first, last), now counted as fired."""
        with self.lock:
            for fault in self.faults:
                if (
                    fault.name == name
                    and fault.fired < fault.times
                    and first <= fault.at_byte < last
                ):
                    fault.fired += 1
                    return fault
        return None


class PayloadServer:
    """Serve files by name over HTTP while the `with` block runs."""

    def __init__(self, files: Mapping[str, Path], host: str = "127.0.0.1") -> None:
        for name, path in files.items():
            if "/" in name or not path.is_file():
                raise HarnessConfigError(
                    f"cannot serve {name!r}: {path} is not a file (or the name has a '/')",
                    "serve existing payload files under plain names",
                )
        self._state = _State(dict(files))
        self._host = host
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise HarnessError("PayloadServer.port before start", "use it as a context manager")
        return int(self._server.server_address[1])

    def url(self, name: str, host: str | None = None) -> str:
        """The file's URL as a client at `host`'s side sees the server (default:
        the bound address; a QEMU user-network guest uses 10.0.2.2)."""
        if name not in self._state.files:
            known = ", ".join(sorted(self._state.files))
            raise HarnessConfigError(f"no served file {name!r}", f"served files: {known}")
        return f"http://{host or self._host}:{self.port}/{name}"

    def inject(
        self,
        name: str,
        kind: FaultKind,
        at_byte: int,
        *,
        seconds: float = 0.0,
        length: int = 1,
        times: int = 1,
    ) -> NetworkFault:
        """Arm a fault in `name`'s bytes at `at_byte` for the next `times` requests."""
        size = self._state.files[name].stat().st_size if name in self._state.files else -1
        if not 0 <= at_byte < size:
            raise HarnessConfigError(
                f"network fault at byte {at_byte} of {name!r}, which has {max(size, 0)} bytes",
                "place it inside the served file",
            )
        fault = NetworkFault(name, kind, at_byte, seconds, length, times)
        with self._state.lock:
            self._state.faults.append(fault)
        return fault

    @property
    def served(self) -> list[Served]:
        """The requests answered so far (one is logged once its answer ended)."""
        with self._state.lock:
            return list(self._state.served)

    def wait_served(self, count: int, timeout_s: float = 10.0) -> list[Served]:
        """The log once `count` requests are answered: a client may have read
        the last byte before the server thread logged it."""
        with self._state.lock:
            if not self._state.lock.wait_for(lambda: len(self._state.served) >= count, timeout_s):
                raise HarnessError(
                    f"the payload server answered {len(self._state.served)} requests, "
                    f"not {count}, within {timeout_s:g} s",
                    "the device did not fetch the payload; see its console",
                )
            return list(self._state.served)

    def __enter__(self) -> Self:
        handler = type("_Handler", (_Handler,), {"state": self._state})
        self._server = _QuietServer((self._host, 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        log.info("serving %s on %s:%d", sorted(self._state.files), self._host, self.port)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving (a stalled response ends at once); idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT_S)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client that drops the connection (as devices under a network fault
        # do) is logged, not printed as a traceback on the test's stderr.
        log.debug("http client %s went away", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    state: _State
    timeout = _SOCKET_TIMEOUT_S
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http %s", format % args)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        started = time.monotonic()
        name = self.path.lstrip("/").split("?", 1)[0]
        path = self.state.files.get(name)
        if path is None:
            self.send_error(404, f"no payload named {name!r}")
            self._log(name, 404, 0, 0, None, started)
            return
        size = path.stat().st_size
        first, status = 0, 200
        ranged = _RANGE.match(self.headers.get("Range", ""))
        if ranged:
            first = int(ranged.group(1))
            if first >= size:
                self.send_error(416, "range beyond the end of the payload")
                self._log(name, 416, first, 0, None, started)
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(size - first))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {first}-{size - 1}/{size}")
        self.end_headers()
        if not body:
            self._log(name, status, first, 0, None, started)
            return
        sent, fired = self._send_body(path, name, first, size)
        self._log(name, status, first, sent, fired, started)

    def _send_body(self, path: Path, name: str, first: int, size: int) -> tuple[int, str | None]:
        fault = self.state.take_fault(name, first, size)
        sent = 0
        fired: str | None = None
        with path.open("rb") as src:
            src.seek(first)
            offset = first
            while offset < size:
                chunk = bytearray(src.read(_CHUNK))
                end = offset + len(chunk)
                if fault is not None and fired is None and offset <= fault.at_byte < end:
                    cut = fault.at_byte - offset
                    if fault.kind == "corrupt":
                        for i in range(cut, min(cut + fault.length, len(chunk))):
                            chunk[i] ^= 0xFF
                        fired = f"corrupt {fault.length} B at {fault.at_byte}"
                    else:
                        sent += self._write(chunk[:cut])
                        if fault.kind == "drop":
                            self._drop()
                            return sent, f"drop at {fault.at_byte}"
                        fired = f"stall {fault.seconds:g} s at {fault.at_byte}"
                        self.state.stopping.wait(fault.seconds)
                        chunk = chunk[cut:]
                try:
                    sent += self._write(chunk)
                except OSError:  # the client went away: what it got is logged
                    return sent, fired
                offset = end
        return sent, fired

    def _write(self, data: bytes | bytearray) -> int:
        self.wfile.write(data)
        return len(data)

    def _drop(self) -> None:
        """End the connection at once, as a network that goes away does."""
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _log(
        self, name: str, status: int, first: int, sent: int, fault: str | None, started: float
    ) -> None:
        entry = Served(name, status, first, sent, fault, round(time.monotonic() - started, 3))
        with self.state.lock:
            self.state.served.append(entry)
            self.state.lock.notify_all()
