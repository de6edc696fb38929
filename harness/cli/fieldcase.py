"""``ab-harness capture`` and ``ab-harness replay``: a field failure as a bundle, and back.

``capture`` reads a running device over its shell (SSH when its YAML has an
SSHDriver, else the console's ShellDriver) into a bundle folder, touching
no power switch; ``--boot`` powers a QEMU target on first (its image, or a
disk left by a test), since nothing keeps a QEMU running between commands.
``replay`` rebuilds the bundle's state on a fresh copy of a target's disk,
boots it and prints each boot, judged by the oracle; exit 1 when a boot
broke the contract.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.bootloaders import bootloader_for
from harness.clients import client_for
from harness.device.live import find_driver, live_target
from harness.device.serial_log import normalise_newlines
from harness.device.shell import Shell
from harness.errors import HarnessConfigError
from harness.fieldcase import PayloadStore, capture, load, replay
from harness.images import ensure_image
from harness.machines.qemu import ABQEMUDriver
from harness.targets.matrix import capabilities
from harness.targets.target import TargetSpec, load_target, materialize


def add_fieldcase_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    cap = subparsers.add_parser(
        "capture", help="save a running device's black box (env, slots, client state) as a bundle"
    )
    cap.add_argument("--target", required=True, help="target name or YAML path of the device")
    cap.add_argument("--out", type=Path, required=True, help="new folder for the bundle")
    cap.add_argument("--serial-log", type=Path, help="a console log to put in the bundle")
    cap.add_argument(
        "--boot",
        action="store_true",
        help="QEMU targets: power the target on first (nothing else keeps a QEMU running)",
    )
    cap.add_argument("--disk", type=Path, help="with --boot: boot a copy of this disk image")
    cap.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    cap.set_defaults(func=_capture)

    rep = subparsers.add_parser(
        "replay", help="boot a fresh VM in a bundle's state and print what the bootloader does"
    )
    rep.add_argument("bundle", type=Path, metavar="BUNDLE", help="folder written by capture")
    rep.add_argument("--target", help="target to replay on (default: the bundle's)")
    rep.add_argument(
        "--payloads", type=Path, help="folder of rootfs images to find the slots in, by sha256"
    )
    rep.add_argument(
        "--max-boots", type=int, default=4, help="boots to follow until a shell (default 4)"
    )
    rep.add_argument("--reboots", type=int, default=0, help="reboots after the first shell")
    rep.add_argument("--work", type=Path, help="keep the replay disk and serial log here")
    rep.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    rep.set_defaults(func=_replay)


def _capture(args: argparse.Namespace) -> int:
    spec = load_target(args.target)
    bootloader = bootloader_for(spec.bootloader, spec.env)
    client = client_for(spec.update_client)
    with tempfile.TemporaryDirectory(prefix="ab-capture-") as tmp:
        work = Path(tmp)
        if args.boot:
            _require(spec.image is not None, f"target '{spec.name}' has no image to boot", "")
            image = ensure_image(str(spec.image))
            disk = None
            if args.disk is not None:
                _require(args.disk.is_file(), f"{args.disk}: no such disk image", "")
                disk = work / "disk.img"
                shutil.copyfile(args.disk, disk)
            with live_target(
                spec, image, work / "t", bootloader, accel=args.accel, disk=disk
            ) as live:
                live.strategy.transition("shell")
                shell = Shell(live.target.get_driver("ShellDriver", activate=False))
                log = normalise_newlines(live.recorder.raw(0, live.recorder.size))
                bundle = capture(
                    shell,
                    args.out,
                    target=spec.name,
                    bootloader_kind=spec.bootloader,
                    bootloader=bootloader,
                    slots=spec.slots,
                    client=client,
                    serial_log=_serial(args) or log,
                )
        else:
            target, via = _running_target(spec, work)
            try:
                driver = target.get_driver("SSHDriver" if via == "ssh" else "ShellDriver")
                bundle = capture(
                    Shell(driver),
                    args.out,
                    target=spec.name,
                    bootloader_kind=spec.bootloader,
                    bootloader=bootloader,
                    slots=spec.slots,
                    client=client,
                    serial_log=_serial(args),
                    via=via,
                )
            finally:
                target.deactivate_all_drivers()
    print(bundle.describe())
    print(f"bundle written to {bundle.path}")
    return 0


def _running_target(spec: TargetSpec, work: Path) -> tuple[Any, str]:
    """The labgrid target of a running device, and how its shell is reached."""
    from labgrid import Environment

    drivers = spec.labgrid["targets"]["main"].get("drivers", {})
    names = {k for d in drivers for k in d} if isinstance(drivers, list) else set(drivers)
    _require(
        "qemu" not in capabilities(spec),
        f"target '{spec.name}' is a QEMU target the harness starts itself: nothing is running",
        "pass --boot (and --disk DISK for a disk a test left) to boot it and capture it",
    )
    image = ensure_image(spec.image) if spec.image is not None else None
    materialized = materialize(spec, work, image, writable=())
    target = Environment(config_file=str(materialized.labgrid_config)).get_target("main")
    _require(find_driver(target, ABQEMUDriver) is None, f"'{spec.name}' is a QEMU target", "")
    return target, "ssh" if "SSHDriver" in names else "console"


def _serial(args: argparse.Namespace) -> str | None:
    if args.serial_log is None:
        return None
    _require(args.serial_log.is_file(), f"{args.serial_log}: no such serial log", "")
    return str(args.serial_log.read_text(errors="replace"))


def _replay(args: argparse.Namespace) -> int:
    bundle = load(args.bundle)
    spec = load_target(args.target or bundle.target)
    _require(
        spec.image is not None and "qemu" in capabilities(spec),
        f"target '{spec.name}' is no QEMU target with a reference image to replay on",
        "pass --target naming one (e.g. qemu-arm64-uboot)",
    )
    image = ensure_image(str(spec.image))
    bootloader = bootloader_for(spec.bootloader, spec.env)
    store = PayloadStore.of_image(image, spec.slots["A"])
    if args.payloads is not None:
        store.add_folder(args.payloads)
    with tempfile.TemporaryDirectory(prefix="ab-replay-") as tmp:
        work = args.work or Path(tmp)
        result = replay(
            bundle,
            spec,
            image,
            bootloader,
            work,
            store=store,
            max_boots=args.max_boots,
            reboots=args.reboots,
            accel=args.accel,
        )
    print("\n".join(result.lines()))
    return 0 if result.kept_contract else 1


def _require(ok: bool, cause: str, fix: str) -> None:
    if not ok:
        raise HarnessConfigError(cause, fix or None)
