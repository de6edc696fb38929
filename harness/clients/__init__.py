"""Update clients on the device, each an adapter behind `UpdateClient`."""

from __future__ import annotations

import dataclasses

from harness.clients.base import ClientBelief, ClientCheck, ClientResult, UpdateClient
from harness.clients.mender import MenderClient
from harness.clients.rauc import RaucClient
from harness.clients.shell_agent import ShellAgent
from harness.clients.swupdate import SwupdateClient
from harness.errors import HarnessConfigError
from harness.images import carried_client
from harness.targets.target import TargetSpec

# Each name a target YAML (`update_client:`) or --ab-client may give.
CLIENTS: dict[
    str, type[ShellAgent] | type[MenderClient] | type[RaucClient] | type[SwupdateClient]
] = {
    "ab-update": ShellAgent,
    "mender": MenderClient,
    "rauc": RaucClient,
    "swupdate": SwupdateClient,
}


def client_for(name: str) -> UpdateClient:
    """The client adapter named in the target YAML or on the command line."""
    if name not in CLIENTS:
        known = ", ".join(sorted(CLIENTS))
        raise HarnessConfigError(f"no update client named '{name}'", f"use one of: {known}")
    return CLIENTS[name]()


def with_client(spec: TargetSpec, name: str | None) -> TargetSpec:
    """The target as it runs with client `name` (None: its own `update_client`):
    a client that needs an image flavour gets the target's recipe in that
    flavour (`arm64-uboot` -> `arm64-uboot-mender`), cached apart, so the
    reference images stay as they are. An image whose recipe carries the client
    itself (a stock device: `images.carried_client`) is used as it is."""
    chosen = name or spec.update_client
    client = client_for(chosen)
    # A client whose image runs a bootloader contract of its own (RAUC's and
    # SWUpdate's, in their own env) cannot run on a target with another: the
    # target's contract would judge the wrong variables. The target YAML names both.
    contracts: tuple[str, ...] | None = getattr(client, "contracts", None)
    if contracts is not None and spec.bootloader not in contracts:
        raise HarnessConfigError(
            f"update client '{chosen}' keeps its own bootloader contract "
            f"({' or '.join(contracts)}), target {spec.name} has '{spec.bootloader}'",
            f"run a target that names it: --ab-target {getattr(client, 'example_target', '')}",
        )
    flavour = client.image_flavour
    image = spec.image
    if (
        flavour is not None
        and image is not None
        and carried_client(image) != chosen
        and not image.endswith(f"-{flavour}")
    ):
        image = f"{image}-{flavour}"
    timeout = spec.boot_timeout_s + client.boot_extra_s
    return dataclasses.replace(spec, update_client=chosen, image=image, boot_timeout_s=timeout)


__all__ = [
    "CLIENTS",
    "ClientBelief",
    "ClientCheck",
    "ClientResult",
    "MenderClient",
    "RaucClient",
    "ShellAgent",
    "SwupdateClient",
    "UpdateClient",
    "client_for",
    "with_client",
]
