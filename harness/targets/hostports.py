"""Host ports a target leaves to the harness: `ab-harness.host_ports`.

A QEMU target that forwards a host port to the guest (user networking's
`hostfwd=tcp:127.0.0.1:2222-:22` in labgrid's `nic:` string) and the resource
that connects to it (a NetworkService with `port: 2222`) must agree on a
number, and two tests running side by side (pytest-xdist, other users of the
machine) must not share it. The YAML writes a placeholder number that plain
labgrid accepts as it is, and lists it in `ab-harness.host_ports`; when the
harness writes a test's labgrid environment it replaces that number, wherever
it stands on its own (an int value, or digits not part of a longer number in
a string), by a loopback port free at that moment.

The port is free when picked and QEMU binds it a moment later; another
process taking it in between makes QEMU fail to start with "Could not set
up host forwarding rule", a loud error, not a wrong result.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fill_host_ports(config: Any, placeholders: tuple[int, ...]) -> Any:
    """`config` with each placeholder port replaced by one free port (the same one
    everywhere that placeholder appears)."""
    if not placeholders:
        return config
    ports = {p: free_port() for p in placeholders}
    return _replace(config, ports)


def _replace(value: Any, ports: Mapping[int, int]) -> Any:
    if isinstance(value, dict):
        return {k: _replace(v, ports) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, ports) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return ports.get(value, value)
    if isinstance(value, str):
        for old, new in ports.items():
            value = re.sub(rf"(?<!\d){old}(?!\d)", str(new), value)
    return value
