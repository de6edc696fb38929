"""A QMP channel to a running QEMU, where every call has a deadline.

Built on ``qemu.qmp``'s synchronous ``QEMUMonitorProtocol``. That class has
no timeout for ``connect()``, and QEMU's QMP socket accepts a second client
into the listen backlog without ever greeting it while a first client is
attached, so a bare ``connect()`` can block forever. `QmpChannel.connect`
therefore connects the socket itself and waits, bounded, for QEMU's greeting
before handing the socket to the library. Commands carry our own ids so a
reply that arrives after its command timed out is dropped by the library
instead of being taken as the answer to the next command.
"""

from __future__ import annotations

import itertools
import logging
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from harness.errors import DeviceError

log = logging.getLogger(__name__)

# Between connection attempts while QEMU has not created its socket yet:
# short, because QEMU creates it within milliseconds of starting.
_RETRY_INTERVAL_S = 0.05

_CONNECT_FIX = "check that QEMU runs with -qmp unix:PATH,server=on,wait=off and read its stderr"


class QmpCommandError(DeviceError):
    """QEMU answered a QMP command with an error response."""

    def __init__(self, command: str, desc: str, error_class: str) -> None:
        self.command = command
        self.desc = " ".join(desc.split())
        self.error_class = error_class
        super().__init__(f"QMP command {command!r} failed: {self.desc} ({error_class})")


class QmpChannel:
    """An open QMP session with one QEMU; use `connect` to make one.

    Not thread-safe: the underlying library runs an asyncio loop of the
    calling thread for every call.
    """

    def __init__(self, monitor: QEMUMonitorProtocol, socket_path: Path, greeting: Any) -> None:
        self._monitor: QEMUMonitorProtocol | None = monitor
        self._socket_path = socket_path
        self._greeting = greeting
        self._ids = itertools.count(1)

    @classmethod
    def connect(cls, socket_path: Path, timeout_s: float = 10.0) -> QmpChannel:
        """Connect to the QMP server of QEMU at ``socket_path`` and negotiate capabilities.

        Waits for the socket to appear and accept until ``timeout_s`` has
        passed (QEMU may still be starting), then raises `DeviceError` naming
        the socket.
        """
        deadline = time.monotonic() + timeout_s
        sock = _connect_socket(socket_path, deadline)
        try:
            _await_greeting(sock, socket_path, deadline)
            monitor = QEMUMonitorProtocol(sock)
            # The greeting is already waiting in the socket, so this only
            # parses it and exchanges qmp_capabilities: no unbounded wait.
            greeting = monitor.connect(negotiate=True)
        except (QMPError, OSError, EOFError) as err:
            sock.close()
            raise DeviceError(
                f"QMP negotiation with QEMU at {socket_path} failed: {err}", _CONNECT_FIX
            ) from err
        except BaseException:
            sock.close()
            raise
        log.debug("QMP connected to %s: %s", socket_path, greeting)
        return cls(monitor, socket_path, greeting)

    @property
    def greeting(self) -> Any:
        """QEMU's QMP greeting (``{"QMP": {"version": ..., "capabilities": ...}}``)."""
        return self._greeting

    def execute(
        self,
        command: str,
        arguments: Mapping[str, object] | None = None,
        timeout_s: float = 10.0,
    ) -> Any:
        """Run QMP ``command`` with ``arguments`` and return its ``"return"`` value.

        Raises `QmpCommandError` if QEMU answers with an error, and
        `DeviceError` if QEMU does not answer within ``timeout_s`` or the
        connection is lost. After a timeout the channel stays usable.
        """
        monitor = self._require_open(command)
        message: dict[str, Any] = {"execute": command, "id": f"ab-harness-{next(self._ids)}"}
        if arguments is not None:
            message["arguments"] = dict(arguments)
        monitor.settimeout(timeout_s)
        started = time.monotonic()
        try:
            reply = monitor.cmd_obj(message)
        except TimeoutError as err:
            raise DeviceError(
                f"QEMU did not answer QMP {command!r} within {timeout_s:g} s "
                f"on {self._socket_path}",
                "check whether QEMU hangs; the console log shows the guest's last output",
            ) from err
        except (QMPError, OSError, EOFError) as err:
            raise DeviceError(
                f"QMP connection to QEMU at {self._socket_path} lost during {command!r}: "
                f"{type(err).__name__}: {err}",
                "check whether QEMU exited; its stderr says why",
            ) from err
        log.debug("QMP %s -> %.3f s", command, time.monotonic() - started)
        if "error" in reply:
            error = reply["error"]
            raise QmpCommandError(command, str(error.get("desc", "")), str(error.get("class", "")))
        if "return" not in reply:
            raise DeviceError(f"QMP reply to {command!r} has no 'return': {reply!r}")
        return reply["return"]

    def events(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """The QMP events QEMU sent so far and not yet returned (e.g. BLOCK_IO_ERROR).

        A no-op command first: its reply comes after every event QEMU sent
        before it, so none of those is left unread in the socket.
        """
        self.execute("query-version", timeout_s=timeout_s)
        monitor = self._require_open("events")
        found: list[dict[str, Any]] = []
        while batch := monitor.get_events(wait=False):
            found += batch
        return found

    def close(self) -> None:
        """Close the session; idempotent, and quiet if QEMU has already gone."""
        monitor, self._monitor = self._monitor, None
        if monitor is None:
            return
        try:
            monitor.close()
        except (QMPError, OSError, EOFError) as err:
            # The library re-raises why its reader stopped, e.g. EOF after a
            # QMP "quit"; the session is closed either way.
            log.debug("QMP close of %s: %s: %s", self._socket_path, type(err).__name__, err)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _require_open(self, command: str) -> QEMUMonitorProtocol:
        if self._monitor is None:
            raise RuntimeError(f"QMP {command!r} on a closed channel to {self._socket_path}")
        return self._monitor


def _connect_socket(socket_path: Path, deadline: float) -> socket.socket:
    """A socket connected to ``socket_path``, retrying while it is absent or refused."""
    last_error: OSError | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeviceError(
                f"no QMP server accepted on {socket_path}: {last_error}", _CONNECT_FIX
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(remaining)
        try:
            sock.connect(str(socket_path))
        except (FileNotFoundError, ConnectionRefusedError) as err:
            # QEMU not started yet, or it is gone and left its socket file.
            sock.close()
            last_error = err
            time.sleep(min(_RETRY_INTERVAL_S, max(deadline - time.monotonic(), 0.0)))
            continue
        except OSError as err:
            sock.close()
            raise DeviceError(
                f"cannot connect to QMP socket {socket_path}: {err}", _CONNECT_FIX
            ) from err
        return sock


def _await_greeting(sock: socket.socket, socket_path: Path, deadline: float) -> None:
    # MSG_PEEK leaves the greeting in the socket for the library to read.
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    try:
        first = sock.recv(1, socket.MSG_PEEK)
    except TimeoutError as err:
        raise DeviceError(
            f"QMP socket {socket_path} accepted but QEMU sent no greeting "
            "(is another client attached?)",
            "close the other QMP client; QEMU serves one at a time",
        ) from err
    if not first:
        raise DeviceError(f"QEMU closed QMP socket {socket_path} before greeting", _CONNECT_FIX)
    # asyncio needs a non-blocking socket without our timeout.
    sock.settimeout(None)
