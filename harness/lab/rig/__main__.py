"""Run a virtual board rig until stopped: `python -m harness.lab.rig --image arm64-uboot ...`.

For a lab (labgrid's exporter publishes its serial port and power switch):
it prints one line, `ready serial=HOST:PORT power=URL`, once both answer,
and ends (QEMU with it) on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from harness.images import ensure_image
from harness.lab.rig import virtual_rig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.lab.rig", description=__doc__)
    parser.add_argument("--image", default="arm64-uboot", help="reference image recipe")
    parser.add_argument("--workdir", type=Path, required=True, help="the board's own disk copy")
    parser.add_argument("--serial-port", type=int, default=0)
    parser.add_argument("--power-port", type=int, default=0)
    parser.add_argument("--memory", default="512M")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    image = ensure_image(args.image)
    with virtual_rig(
        image,
        args.workdir,
        {"memory": args.memory},
        serial_port=args.serial_port,
        power_port=args.power_port,
    ) as rig:
        host, port = rig.serial_address
        print(f"ready serial={host}:{port} power={rig.power_url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
