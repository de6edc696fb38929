"""Host ports a target YAML leaves to the harness: `@port:NAME`.

A QEMU target that forwards a host port to the guest (user networking's
`hostfwd=tcp:127.0.0.1:@port:ssh-:22` in labgrid's `nic:` string) and the
resource that connects to it (a NetworkService with `port: "@port:ssh"`) must
agree on a number, and two tests running side by side (pytest-xdist, other
users of the machine) must not share it. The harness picks a free loopback
port per NAME when it writes a test's labgrid environment and puts the same
number everywhere that NAME appears: an int where the whole value is the
token, digits inside a longer string.

The port is free when picked and QEMU binds it a moment later; another
process taking it in between makes QEMU fail to start with "Could not set
up host forwarding rule", a loud error, not a wrong result.
"""

from __future__ import annotations

import re
import socket
from typing import Any

TOKEN = re.compile(r"@port:(?P<name>[A-Za-z0-9_]+)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fill_host_ports(config: Any, ports: dict[str, int] | None = None) -> Any:
    """`config` with every `@port:NAME` replaced by NAME's port (picked once per call tree)."""
    ports = {} if ports is None else ports
    if isinstance(config, dict):
        return {k: fill_host_ports(v, ports) for k, v in config.items()}
    if isinstance(config, list):
        return [fill_host_ports(v, ports) for v in config]
    if not isinstance(config, str) or "@port:" not in config:
        return config

    def number(match: re.Match[str]) -> str:
        return str(ports.setdefault(match["name"], free_port()))

    whole = TOKEN.fullmatch(config)
    if whole is not None:
        return int(number(whole))
    return TOKEN.sub(number, config)
