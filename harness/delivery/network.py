"""Delivery by network pull: the test host serves the payload, the device fetches it.

The harness serves the payload file over HTTP (`PayloadServer`, on the
loopback at a port the kernel picks); the device fetches it with busybox
`wget` into a RAM folder and checks its size and sha256 itself before the
update client gets it, as a device whose client downloads first would. A
QEMU guest on the user network sees the host's loopback at 10.0.2.2; a
board in a lab reaches the host at an address of the lab's network (set
`server_address`, and `bind` to an address the board can reach).

Needs capability "network" (a QEMU NIC, or a board whose YAML says it has one).
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Mapping
from typing import Any

from harness.delivery.base import Delivered, DeliveryRefused
from harness.delivery.http_server import FaultKind, PayloadServer
from harness.device.shell import ShellLike
from harness.errors import HarnessConfigError
from harness.images import Payload

log = logging.getLogger(__name__)

NAME = "network"
OPTIONS = {
    "server_address": "the host's address as the device sees it (QEMU user net: 10.0.2.2)",
    "bind": "the address the payload server listens on (default 127.0.0.1)",
    "device_dir": "where the device keeps the fetched payload (default /tmp, a RAM folder)",
    "timeout_s": "seconds the device may take to fetch one payload (default 300)",
}
_RESULT = re.compile(r"^ab-fetch: (?P<size>\d+) (?P<sha>[0-9a-f]{64})\s*$", re.MULTILINE)


class NetworkPull:
    """Serves each payload from the host; the device fetches and checks it."""

    name = NAME
    needs = frozenset({"network"})

    def __init__(
        self,
        shell: ShellLike,
        *,
        server_address: str = "10.0.2.2",
        bind: str = "127.0.0.1",
        device_dir: str = "/tmp",
        timeout_s: float = 300.0,
    ) -> None:
        self._shell = shell
        self.server_address = server_address
        self._bind = bind
        self._device_dir = device_dir
        self._timeout_s = float(timeout_s)
        self.servers: list[PayloadServer] = []
        self._faults: list[tuple[str, FaultKind, int, dict[str, Any]]] = []

    @classmethod
    def from_options(cls, shell: ShellLike, options: Mapping[str, object]) -> NetworkPull:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise HarnessConfigError(
                f"delivery 'network' has no option '{unknown[0]}'",
                f"use: {', '.join(OPTIONS)}",
            )
        return cls(shell, **options)  # type: ignore[arg-type]

    def inject(self, name: str, kind: FaultKind, at_byte: int, **options: Any) -> None:
        """Arm a network fault (`PayloadServer.inject`) in the next delivery of
        payload `name`; the server's log (`servers[-1].served`) is its proof."""
        self._faults.append((name, kind, at_byte, options))

    def deliver(self, payload: Payload) -> Delivered:
        """Serve `payload`, have the device fetch it, and check size and sha256 there."""
        server = PayloadServer({payload.name: payload.path}, host=self._bind).__enter__()
        self.servers.append(server)
        armed = [f for f in self._faults if f[0] == payload.name]
        self._faults = [f for f in self._faults if f[0] != payload.name]
        for name, kind, at_byte, options in armed:
            server.inject(name, kind, at_byte, **options)
        url = server.url(payload.name, host=self.server_address)
        dest = f"{self._device_dir.rstrip('/')}/ab-payload-{payload.name}"
        q = shlex.quote
        # The device checks the bytes itself: nothing it did not verify reaches the client.
        # The deadline is busybox `timeout`: Debian 12's static busybox wget (1.35,
        # arm64) dies with SIGSEGV when given its own `-T SECONDS`.
        limit = max(1, int(self._timeout_s) - 5)
        script = (
            f"rm -f {self._device_dir}/ab-payload-*; "
            f"timeout {limit} wget -q -O {q(dest)} {q(url)} || "
            f'{{ echo "ab-fetch: wget failed ($?)"; exit 2; }}; '
            f'set -- $(wc -c < {q(dest)}) $(sha256sum {q(dest)}); echo "ab-fetch: $1 $2"; '
            f'[ "$1" = {payload.size} ] && [ "$2" = {payload.sha256} ] || '
            f"{{ rm -f {q(dest)}; echo 'ab-fetch: refused, not the payload'; exit 3; }}"
        )
        code, out = self._shell.exec(script, timeout_s=self._timeout_s)
        served = [f"{s.status} {s.bytes_sent} B{f' ({s.fault})' if s.fault else ''}"
                  for s in server.served]  # fmt: skip
        detail: dict[str, object] = {"url": url, "served": served, "device_output": out.strip()}
        if code != 0:
            found = _RESULT.search(out)
            got = f"{found['size']} bytes, sha256 {found['sha'][:16]}…" if found else "nothing"
            raise DeliveryRefused(
                f"the device fetched {got} from {url}, not payload '{payload.name}' "
                f"({payload.size} bytes, sha256 {payload.sha256[:16]}…): exit {code}, "
                f"{out.strip().splitlines()[-1] if out.strip() else 'no output'}",
                "see the payload server's log in the evidence; check the device's network",
            )
        log.info("payload %s fetched by the device from %s", payload.name, url)
        return Delivered(payload, dest, f"fetched from {url}", detail)

    def close(self) -> None:
        servers, self.servers = self.servers, []
        for server in servers:
            server.stop()
