"""The rig's power switch: an HTTP outlet in labgrid's `simplerest` dialect.

labgrid's NetworkPowerDriver with a NetworkPowerPort of model `simplerest`
sends `GET {host}` with `{index}` and `{value}` filled in: value 1 switches
the outlet on, 0 off, and an empty value asks (the answer is "1" or "0").
Here the URL is `http://127.0.0.1:PORT/outlet/{index}/{value}`; outlet 0 is
the virtual board. "off" kills QEMU before the answer is sent, so a driver's
`off()` returning means the power is gone. Every switching is logged with
its time: the log is what a power-cut fault's proof cites.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/outlet/(?P<index>\d+)(?:/(?P<value>[01]?))?/?$")
URL_TEMPLATE = "http://{host}:{port}/outlet/{{index}}/{{value}}"


@dataclass(frozen=True)
class Switching:
    """One request that switched the outlet: when (monotonic), to what, and what it did."""

    at: float
    on: bool
    effect: str


class Outlet:
    """What the switch drives: something with on/off and a state."""

    def __init__(
        self, on: Callable[[], object], off: Callable[[], object], is_on: Callable[[], bool]
    ) -> None:
        self.on, self.off, self.is_on = on, off, is_on


class PowerSwitch:
    """A one-outlet simplerest power switch on the loopback."""

    def __init__(self, outlet: Outlet, host: str = "127.0.0.1", port: int = 0) -> None:
        self.log: list[Switching] = []
        self._lock = threading.Lock()
        handler = type("_Handler", (_Handler,), {"switch": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._outlet = outlet
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return URL_TEMPLATE.format(host=host, port=port)

    def set(self, on: bool) -> str:
        with self._lock:
            result = self._outlet.on() if on else self._outlet.off()
            effect = f"{'on' if on else 'off'}: {result}"
            self.log.append(Switching(time.monotonic(), on, effect))
        return effect

    def is_on(self) -> bool:
        return self._outlet.is_on()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)


class _Handler(BaseHTTPRequestHandler):
    switch: PowerSwitch

    def log_message(self, format: str, *args: object) -> None:
        log.debug("power switch: %s", format % args)

    def do_GET(self) -> None:
        match = _PATH.match(self.path)
        if match is None or match["index"] != "0":
            self._answer(404, "no such outlet (this switch has outlet 0)\n")
            return
        value = match["value"]
        try:
            if value:
                self.switch.set(value == "1")
            body = "1" if self.switch.is_on() else "0"
        except Exception as err:  # the board would not start: a 500 the driver reports
            self._answer(500, f"{err}\n")
            return
        self._answer(200, body)

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
