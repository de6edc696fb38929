"""``ab-harness sweep``: power lost at every interesting write of one update.

Records one update of the target with every disk write logged (v3 over a
committed v2, where the image has a v3), boots the crash states (both crash
models, one boot per class of states that leave the same readable bytes)
with the target's update client or --client's, prints the table naming for
each broken state the part of the invariant that broke (slot, env, data,
client), and exits 1 if any did. The table and the rows (JSON, with the
states judged and the boots made, each with its rate) are written to --out.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness.bootloaders import bootloader_for
from harness.clients import CLIENTS, with_client
from harness.images import ensure_image
from harness.targets.target import load_target


def add_sweep_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sweep = subparsers.add_parser(
        "sweep", help="crash-point sweep: power loss at every write of one update"
    )
    sweep.add_argument("--target", default="qemu-arm64-uboot", help="target name or YAML path")
    sweep.add_argument(
        "--mode", choices=("quick", "full"), default="quick", help="quick: ~10 states"
    )
    sweep.add_argument("--seed", type=int, default=0, help="seed of the sampled crash points")
    sweep.add_argument(
        "--from-slot",
        choices=("A", "B"),
        default="A",
        help="the slot the recorded update starts on",
    )
    sweep.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default=None,
        help="the update client the device runs (default: the target's update_client); "
        "a client with an image flavour runs it (mender: <image>-mender)",
    )
    sweep.add_argument("--workers", type=int, default=2, help="VMs at once (default 2)")
    sweep.add_argument("--out", type=Path, default=Path("ab-results/sweep"), help="table + JSON")
    sweep.add_argument(
        "--quiet",
        action="store_true",
        help="print only the table and where it was written (for CI logs); "
        "default: a progress line per booted experiment",
    )
    sweep.set_defaults(func=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from harness.crashsweep.sweep import sweep_target

    spec = with_client(load_target(args.target), args.client)
    if spec.image is None:
        print(
            f"ab-harness: error: target '{spec.name}' has no image recipe to sweep", file=sys.stderr
        )
        return 1
    image = ensure_image(spec.image)
    bootloader = bootloader_for(spec.bootloader, spec.env)

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="ab-sweep-") as tmp:
        run = sweep_target(
            spec,
            image,
            bootloader,
            args.mode,
            Path(tmp),
            seed=args.seed,
            workers=args.workers,
            progress=progress,
            start_slot=args.from_slot,
        )
    print("\n".join(run.table))
    print(f"table and rows written to {run.write(args.out)}")
    return 1 if run.report.failures else 0
