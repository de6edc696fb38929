"""``ab-harness writelog``: inspect a QEMU write log and build crash-state disks from it.

``show LOG [--disk BASE] [--limit N]`` prints one row per entry (index,
kind, sector, sectors and, with ``--disk``, what the write touches);
``state LOG BASE --index K --model M [--seed S] [--pick I] --out DISK``
lists the crash states of that index and model and writes state ``I``.
Partition names come from a ``manifest.json`` beside BASE when there is
one (reference images have it), else from the partition table.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from harness.crashsweep.crashdisk import METHODS, materialize
from harness.crashsweep.crashstate import MODELS, crash_states
from harness.crashsweep.disklayout import DiskLayout, names_from_manifest, regions_from_manifest
from harness.crashsweep.writelog import WriteLog
from harness.errors import HarnessConfigError

__all__ = ["add_writelog_command"]

log = logging.getLogger(__name__)


def add_writelog_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``writelog show`` and ``writelog state``."""
    parser = subparsers.add_parser("writelog", help="read write logs, build crash-state disks")
    sub = parser.add_subparsers(dest="writelog_command", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="list the entries of a dm-log-writes log")
    show.add_argument("log", type=Path, metavar="LOG", help="log written by QEMU's blklogwrites")
    show.add_argument("--disk", type=Path, metavar="BASE", help="disk image to describe sectors")
    show.add_argument("--limit", type=_positive, metavar="N", help="show the first N entries")
    show.set_defaults(func=_show)
    state = sub.add_parser("state", help="write the disk a power cut at one log index leaves")
    state.add_argument("log", type=Path, metavar="LOG")
    state.add_argument("base", type=Path, metavar="BASE", help="the disk before the first write")
    state.add_argument("--index", type=int, required=True, metavar="K", help="entries 0..K-1 ran")
    state.add_argument("--model", choices=MODELS, required=True)
    state.add_argument("--seed", type=int, default=0, metavar="S", help="random subsets' seed")
    state.add_argument("--pick", type=int, default=0, metavar="I", help="which listed state")
    state.add_argument("--method", choices=METHODS, default="overlay")
    state.add_argument("--out", type=Path, required=True, metavar="DISK")
    state.set_defaults(func=_state)


def _show(args: argparse.Namespace) -> int:
    wlog = WriteLog.open(args.log)
    layout = _layout(args.disk) if args.disk else None
    if layout is not None:
        wlog.check_fits(layout.size)
    print(wlog.describe())
    print(f"{'index':>6}  {'kind':<14} {'sector':>10} {'sectors':>8}  touches")
    for entry in wlog.entries[: args.limit]:
        touches = ""
        if layout is not None and entry.nr_sectors and not entry.is_mark:
            touches = layout.describe_range(entry.sector, entry.nr_sectors, entry.sector_size)
        sector = str(entry.sector) if entry.nr_sectors else "-"
        count = str(entry.nr_sectors) if entry.nr_sectors else "-"
        print(f"{entry.index:>6}  {entry.kind:<14} {sector:>10} {count:>8}  {touches}".rstrip())
    if args.limit is not None and len(wlog) > args.limit:
        print(f"… {len(wlog) - args.limit} more entries")
    return 0


def _state(args: argparse.Namespace) -> int:
    wlog = WriteLog.open(args.log)
    states = crash_states(wlog, args.index, args.model, seed=args.seed)
    if not 0 <= args.pick < len(states):
        raise HarnessConfigError(
            f"--pick {args.pick}: index {args.index} has {len(states)} {args.model} states",
            f"pick 0..{len(states) - 1}",
        )
    for i, state in enumerate(states):
        print(f"{'*' if i == args.pick else ' '} {i:>3}  {state.label}")
    disk = materialize(args.base, wlog, states[args.pick], args.out, method=args.method)
    print(
        f"{disk.path}: {disk.format} ({disk.method}), {disk.extents} extents, "
        f"{disk.bytes_changed} bytes from the log over {args.base}"
    )
    return 0


def _layout(disk: Path) -> DiskLayout:
    manifest = disk.parent / "manifest.json"
    names: dict[int, str] = {}
    regions: list[tuple[int, int, str]] = []
    if manifest.is_file():
        try:
            data: Any = json.loads(manifest.read_text())
        except (OSError, ValueError) as err:
            log.warning("%s: ignored (%s)", manifest, err)
        else:
            names = names_from_manifest(data) if isinstance(data, dict) else {}
            regions = regions_from_manifest(data) if isinstance(data, dict) else []
    return DiskLayout.read(disk, names, regions)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value
