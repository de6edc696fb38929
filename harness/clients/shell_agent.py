"""The reference image's update agent (`ab-update`), in the harness's words.

Everything the harness knows about the agent's command line and its
console lines lives here.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from harness.clients.base import ClientBelief, ClientResult
from harness.device.shell import ShellLike
from harness.images import Payload

_SHA256 = re.compile(r"^ab-update: sha256 (?P<sha>[0-9a-f]{64})\s*$", re.MULTILINE)
_STATUS = re.compile(r"^ab-update: slot=(?P<slot>\S+) version=(?P<version>\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ShellAgent:
    """`ab-update install SRC SHA256` (prints `ab-update: sha256 HEX`), `commit`, `status`."""

    command: str = "ab-update"
    name: str = "ab-update"
    # The reference images carry the agent; it hashes what it wrote.
    image_flavour: str | None = None
    reports_sha256: bool = True
    boot_extra_s: float = 0.0
    # Its state file (/data/ab-update/installed) exists only while an update
    # is on trial, so before/after manifests never see it: nothing left out.
    data_state: tuple[str, ...] = ()
    # What it installed, and to which slot: it commits only the slot it installed to.
    state_paths: tuple[str, ...] = ("/data/ab-update/installed",)

    def medium(self, payload: Payload) -> Payload:
        """The raw rootfs image itself: the agent dd's the key's block device."""
        return payload

    def install_command(self, source: str, sha256: str) -> str:
        return f"{self.command} install {shlex.quote(source)} {shlex.quote(sha256)}"

    def install(
        self, shell: ShellLike, source: str, expect_sha256: str, timeout_s: float = 180.0
    ) -> ClientResult:
        command = self.install_command(source, expect_sha256)
        code, out = shell.exec(command, timeout_s=timeout_s)
        return ClientResult(command, code, out)

    def device_sha256(self, result: ClientResult) -> str | None:
        return self.streamed_sha256(result.output)

    def commit(self, shell: ShellLike) -> ClientResult:
        return self._run(shell, "commit")

    def status(self, shell: ShellLike) -> ClientResult:
        return self._run(shell, "status")

    def _run(self, shell: ShellLike, verb: str) -> ClientResult:
        command = f"{self.command} {verb}"
        code, out = shell.exec(command)
        return ClientResult(command, code, out)

    def before_health_pattern(self, slot: str) -> str:
        """The console line a slot's init prints after it came up and before
        the health check runs (a regex)."""
        return rf"ab-init: slot={slot} "

    def believes(self, shell: ShellLike) -> ClientBelief:
        """`ab-update status` (the version it reports; clean when it exits 0
        and lists the env) and its state file: the agent thinks an update is
        pending while /data/ab-update/installed names the slot it installed to.
        Nothing is written: the status query is its ordinary next command."""
        status = self.status(shell)
        state_path = shlex.quote(self.state_paths[0])
        code, out = shell.exec(f"cat {state_path} 2>/dev/null || echo none")
        state = ClientResult(f"cat {self.state_paths[0]}", code, out)
        match = _STATUS.search(status.output)
        version = match.group("version") if match else ""
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        pending = None if code != 0 or not lines else lines[-1] != "none"
        return ClientBelief(version, pending, status.ok and match is not None, (status, state))

    def slot_release(self, shell: ShellLike) -> str:
        """The running rootfs's /etc/version (the reference images' release number)."""
        return shell.exec0("cat /etc/version").strip()

    def streamed_sha256(self, output: str) -> str | None:
        """The hash the agent computed while writing, or None if it printed none."""
        match = _SHA256.search(output)
        return match.group("sha") if match else None
