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


@dataclass(frozen=True)
class ClientBelief:
    """What the update client itself believes about the device, in its own words.

    After a power cut the running slot, the env and the client's books can
    disagree; a verdict that looked only at the slot and the env would call
    a device "ok" whose client reports the wrong release, still waits for a
    commit, or fails its next command. `evidence` keeps each command the
    belief was read from, with its output, for the report.
    """

    installed: str  # the release name the client reports as installed ("" if none)
    pending: bool | None  # it thinks an update awaits a commit (None: it cannot tell)
    next_ok: bool  # its next ordinary command (a status query, a commit) succeeded cleanly
    evidence: tuple[ClientResult, ...] = ()
    note: str = ""  # how the belief was reached, where that is worth saying

    def disagreement(self, slot_release: str, pending: bool) -> str | None:
        """None when the client agrees with the device, else why not, starting
        with "client:": `slot_release` is the name the running slot's release
        carries (`UpdateClient.slot_release`), `pending` whether the env has an
        update pending under the target's contract (`BootEnv.pending`; on the
        Mender and SWUpdate contracts, U-Boot's `upgrade_available`)."""
        problems = []
        if self.installed != slot_release:
            problems.append(
                f"reports {self.installed or 'nothing'!r} installed, "
                f"the running slot holds {slot_release!r}"
            )
        if self.pending is None:
            problems.append("cannot tell whether an update is pending")
        elif self.pending != pending:
            said = "pending" if self.pending else "nothing pending"
            problems.append(f"believes {said}, the env says upgrade_available={int(pending)}")
        if not self.next_ok:
            failed = [r for r in self.evidence if not r.ok] or list(self.evidence[-1:])
            if failed:
                tail = " ".join(failed[0].output.split())[-160:]
                problems.append(
                    f"its next command failed ({failed[0].command}: "
                    f"exit {failed[0].exit_code}: {tail})"
                )
            else:
                problems.append("its next command failed")
        return "client: " + "; ".join(problems) if problems else None

    def describe(self) -> str:
        pending = {True: "pending", False: "nothing pending", None: "pending unknown"}
        clean = "next command ok" if self.next_ok else "next command FAILED"
        note = f" ({self.note})" if self.note else ""
        return f"client: {self.installed or '-'}, {pending[self.pending]}, {clean}{note}"


@dataclass(frozen=True)
class ClientCheck:
    """The client's belief beside the release the running slot holds: what a
    verdict compares with the env (`Observer.client()` reads both)."""

    belief: ClientBelief
    slot_release: str

    def disagreement(self, pending: bool) -> str | None:
        return self.belief.disagreement(self.slot_release, pending)


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

    def believes(self, shell: ShellLike) -> ClientBelief:
        """What the client reports: the release it calls installed, whether it
        waits for a commit, and whether its next ordinary command runs clean.
        Read after the env: the probe may be a commit, as the client's own
        next step would be."""
        ...

    def slot_release(self, shell: ShellLike) -> str:
        """The name the running slot's release carries, read from the rootfs
        itself (not from the client's books): what `believes().installed` must say."""
        ...
