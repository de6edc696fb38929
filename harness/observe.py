"""Observing the device: bootloader env (host and device side), booted slot,
slot contents and the data partition."""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.bootloaders import BootEnv, Bootloader, read_under
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

    cmdline_root: str  # the root device: root= of the cmdline, or MAJ:MIN of the mount
    cmdline_slot: str  # the slot whose partition that is
    etc_slot: str | None  # what the slot file says (None: the device has none)
    version: str

    @property
    def slot(self) -> str:
        return self.cmdline_slot


# The root device, as `device.running_slot` says to learn it: the cmdline's
# root=, or the partition mounted at / ("MAJ:MIN N", N its number in sysfs).
ROOT_DEVICE = {
    "cmdline": "cat /proc/cmdline",
    "mounts": 'while read -r _i _p majmin _r mnt _x; do [ "$mnt" = / ] && '
    'echo "$majmin $(cat /sys/dev/block/$majmin/partition)"; done < /proc/self/mountinfo',
}


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
        by the device's fw_printenv: that is `env_device()`); read under the
        target's contract (`read_under`: `boot_part`, `pending`)."""
        if self._disk is None:
            env = self._env_from_board()
        else:
            env = self._bootloader.env_from_image(self._disk)
        env = read_under(self._bootloader, env, self._spec.slots)
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
        env = read_under(
            self._bootloader, self._bootloader.env_from_device(self._shell), self._spec.slots
        )
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
        """The running slot from the root device, learned as the target says
        (`device.running_slot`: root= of /proc/cmdline, or the partition mounted
        at / in the mount table), and the slot file where the device has one
        (`device.slot_file`): the two must agree. The version is the running
        rootfs's `device.version_file` ("" where it has none)."""
        device = self._spec.device
        reads = [ROOT_DEVICE[device.running_slot], "echo"]
        files = (device.slot_file, device.version_file)
        reads += [f"cat {shlex.quote(f)}" if f else "echo -" for f in files]
        out = self._shell.exec0("; ".join(reads))
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        if device.running_slot == "mounts":
            match = re.fullmatch(r"(\d+:\d+) (\d+)", lines[0]) if lines else None
            root, part = (match.group(1), match.group(2)) if match else ("", None)
        else:
            match = re.search(r"\broot=(\S+)", lines[0]) if lines else None
            root = match.group(1) if match else ""
            number = re.search(r"(\d+)$", root)
            part = number.group(1) if number else None
        if match is None or len(lines) < 3:
            raise DeviceError(
                f"cannot tell the booted slot from: {out.strip()[:200]!r}",
                f"the device must show its root device ({device.running_slot}) and its "
                "slot and version files, or fix ab-harness.device (running_slot, slot_file, "
                "version_file)",
            )
        slot = self._spec.slot_of_partition(int(part)) if part else "?"
        etc_slot = None if device.slot_file is None else lines[1]
        version = "" if device.version_file is None else lines[2]
        observation = SlotObservation(root, slot, etc_slot, version)
        if etc_slot is not None and slot != etc_slot:
            raise DeviceError(
                f"slot witnesses disagree: root device {root} is slot "
                f"{slot}, {device.slot_file} says {etc_slot}",
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
