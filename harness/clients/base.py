"""What the harness needs from an update client on the device, whichever it is.

A client is an adapter: the reference image's shell agent (`ab-update`) and
the real Mender client are two modules behind this one interface, so a
scenario never asks which client runs. Delivery (how the payload gets onto
the device: a hot-plugged disk, an HTTP URL) is not the client's business;
the client is handed a source it can read on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from harness.images import Payload
from harness.shell import ShellLike


@dataclass(frozen=True)
class ClientResult:
    """One client command on the device: its exit code and what it printed."""

    command: str
    exit_code: int
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class UpdateClient(Protocol):
    """An update client, as the harness drives it over the device's shell."""

    @property
    def name(self) -> str:
        """Its name in reports and in the target YAML's `update_client:` ("ab-update")."""
        ...

    @property
    def image_flavour(self) -> str | None:
        """The image variant the client needs (`<recipe>-<flavour>`), or None
        when the target's own image carries it (the shell agent)."""
        ...

    @property
    def boot_extra_s(self) -> float:
        """Seconds a boot may take beyond the target's boot timeout because of
        what the client does in it (Mender's commit: see its adapter)."""
        ...

    @property
    def data_state(self) -> tuple[str, ...]:
        """Folders under /data the client keeps its own state in (left out of
        `observe.data_manifest()`: they change with every install by design)."""
        ...

    @property
    def reports_sha256(self) -> bool:
        """Whether `device_sha256` gives the hash the device computed over what it wrote."""
        ...

    def medium(self, payload: Payload) -> Payload:
        """What is plugged into the device for `payload` (the raw rootfs image,
        or a key holding the client's own package of it)."""
        ...

    def install(
        self, shell: ShellLike, source: str, expect_sha256: str, timeout_s: float
    ) -> ClientResult:
        """Install the payload at `source` (a device path or URL) into the inactive
        slot and point the bootloader at it; the reboot is the caller's."""
        ...

    def device_sha256(self, result: ClientResult) -> str | None:
        """The payload hash the client computed while installing, if it reports one."""
        ...

    def commit(self, shell: ShellLike) -> ClientResult:
        """Make a running, tried update permanent."""
        ...

    def status(self, shell: ShellLike) -> ClientResult:
        """What the client says about the device's state (slot, version, pending)."""
        ...

    def before_health_pattern(self, slot: str) -> str:
        """A console regex printed in a slot's boot after it came up and before
        the health check (or the client's verify step) runs."""
        ...
