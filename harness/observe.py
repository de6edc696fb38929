"""Observing the device: bootloader env (host and device side), booted slot,
slot contents and the data partition."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.bootloaders import BootEnv, Bootloader
from harness.clients import ClientCheck, UpdateClient
from harness.device_files import read_bytes, sha256_of
from harness.diskimage import partition_sha256
from harness.errors import DeviceError, HarnessConfigError
from harness.shell import ShellLike
from harness.target import TargetSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlotObservation:
    """Which slot runs, by two independent witnesses that must agree."""

    cmdline_root: str
    cmdline_slot: str
    etc_slot: str
    version: str

    @property
    def slot(self) -> str:
        return self.etc_slot


class Observer:
    """Reads state without changing it; every env read is handed to `on_env`."""

    def __init__(
        self,
        spec: TargetSpec,
        bootloader: Bootloader,
        shell: ShellLike,
        disk: Path | None,
        on_env: Callable[[str, BootEnv], object] | None = None,
        client_state: tuple[str, ...] = (),
        client: UpdateClient | None = None,
    ) -> None:
        self._spec = spec
        self._client = client
        # Folders under the data mount the update client keeps its own books
        # in (Mender's database): they change with every install by design.
        self._client_state = client_state
        self._bootloader = bootloader
        self._shell = shell
        self._disk = disk
        self._on_env = on_env

    def env_host(self, label: str = "host") -> BootEnv:
        """The env as stored: read from the disk image on the host (QEMU), or on a
        board (`ab-harness.board`) as the raw bytes of its env files, copied
        over the shell, and parsed by the harness as the bootloader would (not
        by the device's fw_printenv: that is `env_device()`)."""
        if self._disk is None:
            env = self._env_from_board()
        else:
            env = self._bootloader.env_from_image(self._disk)
        if self._on_env:
            self._on_env(label, env)
        return env

    def _env_from_board(self) -> BootEnv:
        board = self._spec.board
        from_files = getattr(self._bootloader, "env_from_files", None)
        if board is None or from_files is None:
            raise HarnessConfigError(
                f"target '{self._spec.name}' has no disk image to read on the host"
                + (" and no ab-harness.board section" if board is None else ""),
                "add ab-harness.board (disk, env_dir) or use env_device() on this target",
            )
        size = self._spec.env.size
        paths = [f"{board.env_dir.rstrip('/')}/{name}" for name in self._spec.env.files]
        blobs = [read_bytes(self._shell, path, 0, size) for path in paths]
        env: BootEnv = from_files(blobs, f"device:{'+'.join(paths)}")
        return env

    def env_device(self, label: str = "device") -> BootEnv:
        """The env as the running device sees it (fw_printenv)."""
        env = self._bootloader.env_from_device(self._shell)
        if self._on_env:
            self._on_env(label, env)
        return env

    def client(self, label: str = "client") -> ClientCheck:
        """What the update client believes (installed release, pending or not,
        its next command clean), beside the release the running slot's rootfs
        carries. Read it after the env: the client's next command may be a commit."""
        if self._client is None:
            raise HarnessConfigError(
                "this observer was made without the update client", "pass client= (harness bug)"
            )
        check = ClientCheck(
            self._client.believes(self._shell), self._client.slot_release(self._shell)
        )
        log.info(
            "%s: %s (running slot holds %s)", label, check.belief.describe(), check.slot_release
        )
        return check

    def booted_slot(self) -> SlotObservation:
        """The running slot from /proc/cmdline's root= and /etc/slot; they must agree."""
        out = self._shell.exec0("cat /proc/cmdline; echo; cat /etc/slot; cat /etc/version")
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        match = re.search(r"\broot=(\S+)", lines[0]) if lines else None
        if match is None or len(lines) < 3:
            raise DeviceError(
                f"cannot tell the booted slot from: {out.strip()[:200]!r}",
                "the image must pass root= and provide /etc/slot and /etc/version",
            )
        root = match.group(1)
        part = re.search(r"(\d+)$", root)
        cmdline_slot = self._spec.slot_of_partition(int(part.group(1))) if part else "?"
        observation = SlotObservation(root, cmdline_slot, lines[1], lines[2])
        if observation.cmdline_slot != observation.etc_slot:
            raise DeviceError(
                f"slot witnesses disagree: cmdline root={root} is slot "
                f"{cmdline_slot}, /etc/slot says {observation.etc_slot}",
                "the bootloader and the rootfs disagree on which slot runs",
            )
        return observation

    def slot_sha256(self, slot: str, length: int | None = None) -> str:
        """sha256 of a slot's whole partition (or of its first `length` bytes:
        `slot_sha256("B", payload.size) == payload.sha256` says B holds exactly
        that payload), read from the disk image on the host."""
        return self.partition_sha256(self._spec.slots[slot], length)

    def partition_sha256(self, number: int, length: int | None = None) -> str:
        """On the host from the disk image; on a board (`ab-harness.board`) the
        device hashes its own partition (it cannot be copied over a console)."""
        if self._disk is None:
            if self._spec.board is None:
                raise HarnessConfigError(
                    f"target '{self._spec.name}' has no host disk image and no ab-harness.board",
                    "add ab-harness.board (disk, env_dir) to the target YAML",
                )
            device = self._spec.board.partition(number)
            return sha256_of(self._shell, device, length)
        return partition_sha256(self._disk, number, length)

    def data_manifest(self, mountpoint: str = "/data") -> dict[str, str]:
        """Every file under the data mount with its sha256, read on the device,
        except the update client's own state folder (`UpdateClient.data_state`)."""
        out = self._shell.exec0(f"cd {mountpoint} && find . -type f | sort | xargs -r sha256sum")
        skip = tuple(f"./{folder.strip('/')}/" for folder in self._client_state)
        manifest: dict[str, str] = {}
        for line in out.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and not parts[1].strip().startswith(skip):
                manifest[parts[1].strip()] = parts[0]
        return manifest
