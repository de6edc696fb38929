"""The rig's serial server: a board's UART on a TCP port, as ser2net gives it (RFC 2217).

A lab's serial server outlives the board's power: the TCP port stays open
while the board is off, and the console shows nothing until it is powered
again. QEMU's own `-serial tcp:...,server` port would vanish with every
power cut, so the rig owns the port (this server) and QEMU connects its UART
to a private listener of the rig at each power-on. Bytes from the UART are
always read, also with no client connected (then dropped, as ser2net does):
a QEMU whose serial output nobody reads stalls its whole machine.

It speaks RFC 2217 (telnet with COM-port options, labgrid's default protocol
for a NetworkSerialPort, through pyserial's own server-side `PortManager`),
not raw TCP: pyserial's `socket://` port reports at most one byte waiting,
so labgrid's SerialDriver reads a raw port one byte per call, about 1.5 KB/s
through the harness (measured: a 32 KiB env read took 26 s, boots 2x longer).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from typing import Any

from serial.rfc2217 import PortManager  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

_POLL_S = 0.05
_SEND_TIMEOUT_S = 2.0  # a client that stops reading loses output, the board never stalls


class _Line:
    """The UART's line settings and modem lines as RFC 2217 reports them: fixed
    (a virtual UART has no baud rate to set; changes are acknowledged, as by ser2net)."""

    baudrate = 115200
    bytesize = 8
    parity = "N"
    stopbits = 1
    xonxoff = False
    rtscts = False
    rts = True
    dtr = True
    break_condition = False
    cts = True
    dsr = True
    ri = False
    cd = True

    def reset_input_buffer(self) -> None:
        return None

    def reset_output_buffer(self) -> None:
        return None


class _Telnet:
    """The client connection PortManager writes its answers to (thread safe)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock, contextlib.suppress(OSError):
            self.sock.sendall(data)


class SerialServer:
    """Bridges one TCP client (the harness, labgrid's NetworkSerialPort raw) and
    the UART of whichever QEMU is running now."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._public = _listener(host, port)
        self._uart_listener = _listener("127.0.0.1", 0)
        self._client: socket.socket | None = None
        self._telnet: _Telnet | None = None
        self._manager: Any = None  # the client's PortManager (telnet + RFC 2217 state)
        self._uart: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="rig-serial", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._public.getsockname()[1])

    @property
    def uart_address(self) -> tuple[str, int]:
        """Where QEMU's UART chardev connects (a private loopback port)."""
        host, port = self._uart_listener.getsockname()[:2]
        return str(host), int(port)

    def uart_gone(self) -> None:
        """The board lost power: forget its UART connection."""
        with self._lock:
            uart, self._uart = self._uart, None
        if uart is not None:
            with contextlib.suppress(OSError):
                uart.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for sock in (self._client, self._uart, self._public, self._uart_listener):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                socks = [
                    s for s in (self._public, self._uart_listener, self._client, self._uart) if s
                ]
            try:
                readable, _, _ = select.select(socks, [], [], _POLL_S)
            except (OSError, ValueError):  # a socket closed under us (power off): go round
                continue
            for sock in readable:
                self._service(sock)

    def _service(self, sock: socket.socket) -> None:
        if sock is self._public:
            conn, _ = sock.accept()
            conn.settimeout(_SEND_TIMEOUT_S)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:  # a new client replaces the old one
                old, self._client = self._client, conn
                self._telnet = _Telnet(conn)
                self._manager = PortManager(_Line(), self._telnet)
            if old is not None:
                old.close()
            return
        if sock is self._uart_listener:
            conn, _ = sock.accept()
            with self._lock:
                old, self._uart = self._uart, conn
            if old is not None:
                old.close()
            return
        try:
            data = sock.recv(4096)
        except OSError:
            data = b""
        if sock is self._client:
            if not data:
                with self._lock:
                    self._client = None
                sock.close()
            else:
                typed = b"".join(self._manager.filter(data))  # telnet/RFC 2217 taken out
                if typed and self._uart is not None:
                    with contextlib.suppress(OSError):
                        self._uart.sendall(typed)
            return
        if not data:  # the UART's QEMU is gone
            with self._lock:
                if self._uart is sock:
                    self._uart = None
            sock.close()
            return
        telnet = self._telnet
        if telnet is not None:
            telnet.write(b"".join(self._manager.escape(data)))


def _listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4)
    return sock
