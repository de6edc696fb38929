"""The QEMU target's boot disk as a `-blockdev` graph with named nodes.

labgrid's QEMUDriver attaches the disk with `-drive if=virtio`, which gives
the harness nothing to hold on to. Faults need named nodes: a throttle
filter whose limits can be changed while the guest runs (to place a power
cut at a byte count), a format node whose `file` child can be swapped for a
`blkdebug` filter (to fail writes to one partition), and optionally a
`blklogwrites` node that records every write and flush from power-on.

    virtio-blk-pci (id ab-disk)   or, with bus "sd": sdhci-pci + sd-card (id ab-disk)
      └ throttle         ab-disk-throttle  (throttle-group ab-disk-tg, no limits at start)
          └ blkdebug     ab-disk-split     (no rules; max-transfer 64 KiB)
              └ blklogwrites ab-disk-log   (only with write_log)
                  └ raw|qcow2 ab-disk-fmt
                      └ file ab-disk-file  (cache options of disk_opts live here)

The split node's max-transfer is inherited by the throttle node, so QEMU
cuts a guest request (Linux sends up to 1.25 MiB) into 64 KiB pieces
before the throttle admits them: a throttle clamped shut stops the disk
mid-request, and a power cut can land within a piece of its byte target
instead of within a whole request. A write log therefore holds pieces of
at most 64 KiB too (a torn request is what a real power loss leaves).
Flushes are dropped only at the file node (cache=unsafe), so a write log
above it still sees every flush the guest issued.

An SD card (bus "sd", the boot medium of a stock Mender board) hangs under
the same nodes: QEMU's `sd-card` on an `sdhci-pci` controller. It has no
volatile write cache to model, and it writes block by block (the write log
holds one-sector writes). QEMU's SD emulation does its I/O synchronously
(hw/sd/sd.c), so a throttle clamped shut under it may stall QMP as well:
byte-count power cuts are tested on the virtio bus only.

The functions at the end act on a running QEMU through QMP.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.errors import DeviceError, HarnessConfigError

DEVICE_ID = "ab-disk"
THROTTLE_NODE = "ab-disk-throttle"
THROTTLE_GROUP = "ab-disk-tg"
SPLIT_NODE = "ab-disk-split"
LOG_NODE = "ab-disk-log"
FORMAT_NODE = "ab-disk-fmt"
FILE_NODE = "ab-disk-file"
ERROR_NODE = "ab-disk-errors"
# The BlockBackend of a virtio-blk-pci device sits on its inner virtio device;
# query-blockstats names it by this qdev path. An sd-card holds its own.
QDEV_PATH = f"/machine/peripheral/{DEVICE_ID}/virtio-backend"
SD_QDEV_PATH = f"/machine/peripheral/{DEVICE_ID}"
SD_CONTROLLER_ID = "ab-sdhci"
# How the boot disk is attached: a virtio-blk PCI disk, or an SD card on an
# SDHCI controller (Linux: /dev/vda, /dev/mmcblk0).
DISK_BUSES = ("virtio", "sd")
SECTOR = 512
MAX_TRANSFER = 64 << 10

# -drive cache=MODE as the -blockdev options it stands for:
# (file node cache.direct, file node cache.no-flush, device write-cache).
_CACHE_MODES: Mapping[str, tuple[bool, bool, bool]] = {
    "writeback": (False, False, True),
    "none": (True, False, True),
    "writethrough": (False, False, False),
    "directsync": (True, False, False),
    "unsafe": (False, True, True),
}


def _onoff(flag: bool) -> str:
    return "on" if flag else "off"


@dataclass(frozen=True)
class DiskGraph:
    """How the boot disk is attached: file, format, cache mode, optional write log."""

    path: Path
    fmt: str = "raw"
    cache: str = "writeback"
    write_log: Path | None = None
    max_transfer: int = MAX_TRANSFER
    bus: str = "virtio"

    @classmethod
    def from_drive_options(
        cls,
        path: Path,
        disk_opts: str | None,
        write_log: Path | None = None,
        bus: str = "virtio",
    ) -> DiskGraph:
        """A graph from labgrid's `disk`/`disk_opts` (only `cache=` is understood)."""
        cache = "writeback"
        for item in (disk_opts or "").split(","):
            if not item.strip():
                continue
            key, _, value = item.strip().partition("=")
            if key != "cache" or value not in _CACHE_MODES:
                raise HarnessConfigError(
                    f"ABQEMUDriver disk_opts '{disk_opts}': '{item}' is not supported "
                    "(the disk is built as a -blockdev graph)",
                    f"use only cache=<{'|'.join(_CACHE_MODES)}> in disk_opts",
                )
            cache = value
        if bus not in DISK_BUSES:
            raise HarnessConfigError(
                f"ABQEMUDriver disk_bus '{bus}' is not supported",
                f"use disk_bus: {' or '.join(DISK_BUSES)}",
            )
        fmt = "qcow2" if path.suffix == ".qcow2" else "raw"
        return cls(path, fmt, cache, write_log, bus=bus)

    def qemu_args(self) -> list[str]:
        """The -object/-blockdev/-device arguments for this graph."""
        direct, no_flush, write_cache = _CACHE_MODES[self.cache]
        args = [
            "-object",
            f"throttle-group,id={THROTTLE_GROUP}",
            "-blockdev",
            f"driver=file,node-name={FILE_NODE},filename={_escape(self.path)},"
            f"cache.direct={_onoff(direct)},cache.no-flush={_onoff(no_flush)}",
            "-blockdev",
            f"driver={self.fmt},node-name={FORMAT_NODE},file={FILE_NODE}",
        ]
        below_split = FORMAT_NODE
        if self.write_log is not None:
            args += [
                "-blockdev",
                f"driver=blklogwrites,node-name={LOG_NODE},file={FORMAT_NODE},"
                f"log.driver=file,log.filename={_escape(self.write_log)},log-sector-size={SECTOR}",
            ]
            below_split = LOG_NODE
        args += [
            "-blockdev",
            f"driver=blkdebug,node-name={SPLIT_NODE},image={below_split},"
            f"max-transfer={self.max_transfer}",
            "-blockdev",
            f"driver=throttle,node-name={THROTTLE_NODE},throttle-group={THROTTLE_GROUP},"
            f"file={SPLIT_NODE}",
        ]
        if self.bus == "sd":
            args += [
                "-device",
                f"sdhci-pci,id={SD_CONTROLLER_ID}",
                "-device",
                f"sd-card,drive={THROTTLE_NODE},id={DEVICE_ID}",
            ]
        else:
            args += [
                "-device",
                f"virtio-blk-pci,drive={THROTTLE_NODE},id={DEVICE_ID},"
                f"write-cache={_onoff(write_cache)}",
            ]
        return args


def _escape(path: Path) -> str:
    # QEMU's option parser takes ",," as a literal comma.
    return str(path).replace(",", ",,")


class QmpLike(Protocol):
    def execute(
        self, command: str, arguments: Mapping[str, object] | None = None, timeout_s: float = 10.0
    ) -> Any: ...


@dataclass(frozen=True)
class WriteStats:
    """The disk's write counters as the guest's device sees them (completed requests)."""

    wr_bytes: int
    wr_operations: int
    failed_wr_operations: int


def write_stats(qmp: QmpLike) -> WriteStats:
    """Write counters of the boot disk from `query-blockstats`."""
    for entry in qmp.execute("query-blockstats"):
        if entry.get("qdev") in (QDEV_PATH, SD_QDEV_PATH):
            stats = entry["stats"]
            return WriteStats(
                int(stats["wr_bytes"]),
                int(stats["wr_operations"]),
                int(stats["failed_wr_operations"]),
            )
    raise DeviceError(
        f"query-blockstats has no entry for {QDEV_PATH}",
        "the boot disk is not attached as ABQEMUDriver's -blockdev graph; check the target YAML",
    )


def set_write_limit(qmp: QmpLike, bytes_per_s: int | None) -> None:
    """Throttle guest writes to the disk to bytes_per_s (None: no limit).

    New limits reset the group's buckets, so at most one request already
    admitted or the next one may still pass after a clamp.
    """
    limits: dict[str, int] = {} if bytes_per_s is None else {"bps-write": bytes_per_s}
    qmp.execute(
        "qom-set", {"path": f"/objects/{THROTTLE_GROUP}", "property": "limits", "value": limits}
    )


def insert_write_errors(qmp: QmpLike, sectors: Sequence[int], errno: int = 5) -> None:
    """Fail every guest write that covers one of `sectors` (disk sector numbers) with errno.

    A `blkdebug` node is added over the file node and swapped in as the format
    node's child (`blockdev-reopen`): the raw format driver reports each
    write as blkdebug's `write_aio` event, which activates the rules; a rule
    fails a write whose range contains its sector.

    The rules go in blkdebug's config file, not in the QMP arguments: QEMU
    7.2 picks a rule list given inline out of the flattened options one rule
    at a time, so 10,240 rules (a 40 MiB slot) took 20 s of QEMU's main loop
    on a quiet host and over 30 s on a loaded one; read from the file, the
    same rules open in milliseconds. QEMU reads the file while the node
    opens, so it is gone again when this returns.
    """
    sections = "".join(
        f'[inject-error]\nevent = "write_aio"\niotype = "write"\nsector = "{s}"\n'
        f'errno = "{errno}"\n\n'
        for s in sectors
    )
    with tempfile.NamedTemporaryFile("w", prefix="ab-blkdebug-", suffix=".conf") as config:
        config.write(sections)
        config.flush()
        qmp.execute(
            "blockdev-add",
            {"driver": "blkdebug", "node-name": ERROR_NODE, "image": FILE_NODE,
             "config": config.name},
        )  # fmt: skip
    _set_format_child(qmp, ERROR_NODE)


def remove_write_errors(qmp: QmpLike) -> None:
    """Undo `insert_write_errors`: the format node writes to the file node again."""
    _set_format_child(qmp, FILE_NODE)
    qmp.execute("blockdev-del", {"node-name": ERROR_NODE})


def _set_format_child(qmp: QmpLike, child: str) -> None:
    node = _node(qmp, FORMAT_NODE)
    qmp.execute(
        "blockdev-reopen",
        {"options": [{"driver": node["drv"], "node-name": FORMAT_NODE, "file": child}]},
    )


def _node(qmp: QmpLike, name: str) -> dict[str, Any]:
    for node in qmp.execute("query-named-block-nodes", {"flat": True}):
        if node.get("node-name") == name:
            return dict(node)
    raise DeviceError(
        f"QEMU has no block node '{name}'",
        "the boot disk is not attached as ABQEMUDriver's -blockdev graph; check the target YAML",
    )
