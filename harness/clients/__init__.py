"""Update clients on the device, each an adapter behind `UpdateClient`."""

from __future__ import annotations

from harness.clients.base import ClientResult, UpdateClient
from harness.clients.shell_agent import ShellAgent
from harness.errors import HarnessConfigError

# Each name a target YAML (`update_client:`) or --ab-client may give.
CLIENTS: dict[str, type[ShellAgent]] = {"ab-update": ShellAgent}


def client_for(name: str) -> UpdateClient:
    """The client adapter named in the target YAML or on the command line."""
    if name not in CLIENTS:
        known = ", ".join(sorted(CLIENTS))
        raise HarnessConfigError(f"no update client named '{name}'", f"use one of: {known}")
    return CLIENTS[name]()


__all__ = ["CLIENTS", "ClientResult", "ShellAgent", "UpdateClient", "client_for"]
