"""Delivery over SSH: labgrid's `SSHDriver` copies the payload onto the device.

The way a board that runs sshd takes an update: the harness copies the file
with `SSHDriver.put` (scp, which in OpenSSH 9 speaks SFTP) to `device_dir`
(default /tmp, a RAM folder: the reference image's /data holds 16 MiB, less
than one 34 MiB payload), then the device checks size and sha256 itself
before the update client gets the path, as `network` does. Nothing it did not verify
reaches the client; a wrong copy is deleted there.

The login key: when the YAML's SSHDriver names no `keyfile`, the harness makes
an ed25519 key for the run (ssh-keygen) and writes its public half over the
console into root's authorized_keys before each copy (the reference image's
~/.ssh is /run/ssh, a RAM folder a reboot empties). A board whose own key is
installed names it as `keyfile:` and the console is not used for it.

Each copy opens the SSH connection and closes it after: the update reboots
the device, which kills any connection held across it.

Needs capability "network" (a QEMU NIC with a host port forwarded to the
guest's 22, or a board on the lab's network).
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.delivery.base import Delivered, DeliveryRefused
from harness.device.shell import ShellLike
from harness.errors import DeviceError, HarnessConfigError
from harness.images import Payload

log = logging.getLogger(__name__)

NAME = "ssh"
OPTIONS = {
    "device_dir": "where the payload is copied on the device (default /tmp)",
    "timeout_s": "seconds the device may take to check one payload (default 120)",
}
_RESULT = re.compile(r"^ab-ssh: (?P<size>\d+) (?P<sha>[0-9a-f]{64})\s*$", re.MULTILINE)


class SshCopy:
    """Copies each payload with a labgrid SSHDriver; the device checks it."""

    name = NAME
    needs = frozenset({"network"})

    def __init__(
        self,
        target: Any,
        driver: Any,
        shell: ShellLike,
        *,
        device_dir: str = "/tmp",
        timeout_s: float = 120.0,
    ) -> None:
        self._target = target
        self._driver = driver
        self._shell = shell
        self._device_dir = device_dir.rstrip("/") or "/"
        self._timeout_s = float(timeout_s)
        self._keydir: Path | None = None
        self._public_key: str | None = None
        self._corrupt: dict[str, int] = {}
        if not driver.keyfile:
            self._keydir = Path(tempfile.mkdtemp(prefix="ab-ssh-key-"))
            key = self._keydir / "id_ed25519"
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ab-harness run",
                 "-f", str(key)],
                check=True, timeout=30,
            )  # fmt: skip
            self._public_key = (self._keydir / "id_ed25519.pub").read_text().strip()
            driver.keyfile = str(key)

    @classmethod
    def from_options(
        cls, target: Any, driver: Any, shell: ShellLike, options: Mapping[str, object]
    ) -> SshCopy:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise HarnessConfigError(
                f"delivery 'ssh' has no option '{unknown[0]}'", f"use: {', '.join(OPTIONS)}"
            )
        return cls(target, driver, shell, **options)  # type: ignore[arg-type]

    def corrupt(self, name: str, at_byte: int) -> None:
        """Flip one byte at `at_byte` in the next copy of payload `name` (a
        transfer that went wrong); the device's check must refuse it."""
        self._corrupt[name] = at_byte

    def deliver(self, payload: Payload) -> Delivered:
        dest = f"{self._device_dir}/ab-payload-{payload.name}"
        q = shlex.quote
        prepare = f"rm -f {q(self._device_dir)}/ab-payload-*"
        if self._public_key is not None:
            prepare += (
                f"; printf '%s\\n' {q(self._public_key)} > /root/.ssh/authorized_keys"
                " && chmod 600 /root/.ssh/authorized_keys"
            )
        code, out = self._shell.exec(prepare, timeout_s=30)
        if code != 0:
            raise DeviceError(
                f"the device could not take the run's SSH key: exit {code}, {out.strip()}",
                "root's ~/.ssh must be writable (the reference image links it to /run/ssh)",
            )
        detail: dict[str, object] = {"device_path": dest}
        source = payload.path
        with tempfile.TemporaryDirectory(prefix="ab-ssh-") as tmp:
            if payload.name in self._corrupt:
                at = self._corrupt.pop(payload.name)
                source = Path(tmp) / payload.path.name
                shutil.copyfile(payload.path, source)
                with source.open("r+b") as f:
                    f.seek(at)
                    byte = f.read(1)
                    f.seek(at)
                    f.write(bytes([byte[0] ^ 0xFF]))
                detail["corrupted_byte"] = at
            self._copy(source, dest)
        script = (
            f'set -- $(wc -c < {q(dest)}) $(sha256sum {q(dest)}); echo "ab-ssh: $1 $2"; '
            f'[ "$1" = {payload.size} ] && [ "$2" = {payload.sha256} ] || '
            f"{{ rm -f {q(dest)}; echo 'ab-ssh: refused, not the payload'; exit 3; }}"
        )
        code, out = self._shell.exec(script, timeout_s=self._timeout_s)
        detail["device_output"] = out.strip()
        if code != 0:
            found = _RESULT.search(out)
            got = f"{found['size']} bytes, sha256 {found['sha'][:16]}…" if found else "nothing"
            raise DeliveryRefused(
                f"the device holds {got} at {dest}, not payload '{payload.name}' "
                f"({payload.size} bytes, sha256 {payload.sha256[:16]}…): exit {code}",
                "the copy over SSH was damaged; see the evidence, check the link to the device",
            )
        via = f"copied over SSH to {self._address()}:{dest}"
        log.info("payload %s %s", payload.name, via)
        return Delivered(payload, dest, via, detail)

    def _copy(self, source: Path, dest: str) -> None:
        """One SSH connection for one copy (the update's reboot ends it anyway)."""
        self._target.activate(self._driver)
        try:
            self._driver.put(str(source), dest)
        except Exception as err:  # labgrid raises ExecutionError or a bare Exception
            raise DeviceError(
                f"copying {source.name} over SSH to {self._address()} failed: {err}",
                "check the device's sshd, the NetworkService address/port, and the key",
            ) from err
        finally:
            self._target.deactivate(self._driver)

    def _address(self) -> str:
        service = self._driver.networkservice
        return f"{service.address}:{service.port}"

    def close(self) -> None:
        if self._keydir is not None:
            shutil.rmtree(self._keydir, ignore_errors=True)
            self._keydir = None
