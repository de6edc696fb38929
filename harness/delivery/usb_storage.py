"""Delivery on a storage medium: labgrid writes the payload onto a USB stick or
an SD card in a mux, then the board reads it from there.

The lab host writes the payload with labgrid's `USBStorageDriver.write_image`
(dd with O_DIRECT and fdatasync onto the medium's block device, or a
partition of it). With an SD-mux (`mux: true`, labgrid's `USBSDMuxDriver`) the
card is switched to the host first and back to the board after, as on a lab
bench; a plain USB stick is assumed to be reachable by both (a hub the board
shares, or a switch of the lab's own). The board then sees the medium at
`device_path` (e.g. /dev/sda): the delivery waits for it, with a deadline,
and has the device hash the payload's bytes there before the update client
gets them. A medium larger than the payload (a 16 GB stick) is copied, the
payload's bytes only, to `copy_dir` (/tmp) on the device, because the update client
installs a whole block device it is handed.

Needs capability "storage-medium" (a target whose YAML names this delivery and
the labgrid drivers for it). What runs without hardware is in docs/guide/boards-and-labs.md.
"""

from __future__ import annotations

import logging
import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from harness.delivery.base import Delivered, DeliveryRefused
from harness.device.shell import ShellLike
from harness.errors import DeviceError, HarnessConfigError
from harness.images import Payload

log = logging.getLogger(__name__)

NAME = "usbstorage"
OPTIONS = {
    "device_path": "the medium's block device as the board sees it (required, e.g. /dev/sda)",
    "partition": "write to this partition of the medium instead of the whole device",
    "mux": "true for an SD card in a USB-SD-Mux: switch it to the host to write, then back",
    "copy_dir": "where the board copies a payload from a larger medium (default /tmp)",
    "appear_timeout_s": "seconds the medium may take to appear on the board (default 30)",
    "timeout_s": "seconds the device may take to check one payload (default 120)",
}
_RESULT = re.compile(r"^ab-medium: (?P<size>\d+) (?P<sha>[0-9a-f]{64})\s*$", re.MULTILINE)


class MediumWrite:
    """Writes each payload onto the medium with labgrid; the board checks it there."""

    name = NAME
    needs = frozenset({"storage-medium"})

    def __init__(
        self,
        target: Any,
        storage: Any,
        mux: Any,
        shell: ShellLike,
        *,
        device_path: str,
        partition: int | None = None,
        copy_dir: str = "/tmp",
        appear_timeout_s: float = 30.0,
        timeout_s: float = 120.0,
        attach: Callable[[], str] | None = None,
    ) -> None:
        self._target = target
        self._storage = storage
        self._mux = mux
        self._shell = shell
        self.device_path = device_path
        self._partition = partition
        self._copy_dir = copy_dir.rstrip("/") or "/"
        self._appear_timeout_s = float(appear_timeout_s)
        self._timeout_s = float(timeout_s)
        self._attach = attach
        """How the medium reaches the board when no mux or person moves it (the
        QEMU stand-in hot-plugs the medium's file); returns its path there."""
        self.switches: list[str] = []
        """The mux modes set, in order (the evidence of host → write → dut)."""

    @classmethod
    def from_options(
        cls,
        target: Any,
        storage: Any,
        mux: Any,
        shell: ShellLike,
        options: Mapping[str, object],
    ) -> MediumWrite:
        opts = dict(options)
        unknown = sorted(set(opts) - set(OPTIONS))
        if unknown:
            raise HarnessConfigError(
                f"delivery 'usbstorage' has no option '{unknown[0]}'", f"use: {', '.join(OPTIONS)}"
            )
        if not isinstance(opts.get("device_path"), str):
            raise HarnessConfigError(
                "delivery 'usbstorage' needs 'device_path', the medium as the board sees it",
                "add device_path: /dev/sda (or /dev/mmcblk1) to ab-harness.delivery",
            )
        wants_mux = bool(opts.pop("mux", False))
        if wants_mux and mux is None:
            raise HarnessConfigError(
                "delivery 'usbstorage' has mux: true but the target has no USBSDMuxDriver",
                "add a USBSDMuxDevice resource and a USBSDMuxDriver, or drop mux: true",
            )
        return cls(target, storage, mux if wants_mux else None, shell, **opts)  # type: ignore[arg-type]

    def write(self, payload: Payload) -> None:
        """The host side: the medium to the host (a mux), labgrid's write, back to the board."""
        self._target.activate(self._storage)
        try:
            self._switch("host")
            self._storage.write_image(str(payload.path), partition=self._partition)
        except Exception as err:  # labgrid raises ExecutionError, or a bare one
            raise DeviceError(
                f"writing {payload.path.name} to the storage medium failed: {err}",
                "check the medium is plugged in to the lab host and the resource names it",
            ) from err
        finally:
            self._switch("dut")

    def _switch(self, mode: str) -> None:
        if self._mux is None:
            return
        self._target.activate(self._mux)
        self._mux.set_mode(mode)
        self.switches.append(mode)

    def deliver(self, payload: Payload) -> Delivered:
        self.write(payload)
        if self._attach is not None:
            self.device_path = self._attach()
        q = shlex.quote
        dev = q(self.device_path)
        copy = q(f"{self._copy_dir}/ab-payload-{payload.name}")
        tries = max(1, int(self._appear_timeout_s))
        # The board checks the payload's bytes on the medium; a medium larger than
        # the payload is copied (those bytes only) so the client gets exactly them.
        script = (
            f"rm -f {q(self._copy_dir)}/ab-payload-*; i=0; until [ -b {dev} ]; do "
            f"i=$((i+1)); [ $i -ge {tries} ] && {{ echo 'ab-medium: {dev} never appeared'; "
            f"exit 2; }}; sleep 1; done; "
            f"set -o pipefail; "
            f"sha=$(dd if={dev} bs=1M iflag=count_bytes count={payload.size} 2>/dev/null "
            f"| sha256sum) || {{ echo 'ab-medium: cannot read {dev}'; exit 2; }}; "
            f"set -- $(blockdev --getsize64 {dev}) $sha; "
            f'echo "ab-medium: $1 $2"; '
            f"[ \"$2\" = {payload.sha256} ] || {{ echo 'ab-medium: refused, not the payload'; "
            f"exit 3; }}; "
            f'if [ "$1" = {payload.size} ]; then echo "ab-medium: path {dev}"; else '
            f"dd if={dev} of={copy} bs=1M iflag=count_bytes count={payload.size} 2>/dev/null "
            f'&& echo "ab-medium: path {copy}"; fi'
        )
        code, out = self._shell.exec(script, timeout_s=self._timeout_s + self._appear_timeout_s)
        detail: dict[str, object] = {"device_output": out.strip(), "mux": list(self.switches)}
        found = re.search(r"^ab-medium: path (\S+)\s*$", out, re.MULTILINE)
        if code != 0 or found is None:
            got = _RESULT.search(out)
            held = f"sha256 {got['sha'][:16]}…" if got else "nothing readable"
            raise DeliveryRefused(
                f"the medium at {self.device_path} holds {held}, not payload '{payload.name}' "
                f"(sha256 {payload.sha256[:16]}…): exit {code}, "
                f"{out.strip().splitlines()[-1] if out.strip() else 'no output'}",
                "check the medium reached the board (mux mode, device_path) and its writes",
            )
        path = found[1]
        via = f"written to the storage medium, read by the board at {self.device_path}"
        log.info("payload %s %s", payload.name, via)
        return Delivered(payload, path, via, detail)

    def close(self) -> None:
        for driver in (self._storage, self._mux):
            if driver is not None:
                self._target.deactivate(driver)
