"""Benchmark: where a boot's time goes, line by line of its console.

Boots the target's QEMU command line bare (as bench/cycle.py's `bare` run
does, over a fresh disk copy) and prints every console line with the
seconds since QEMU started, until the shell prompt: U-Boot's banner, its
env load and saves, "N bytes read in M ms" of the kernel, "Starting
kernel ...", init's lines, the prompt. Comparing two targets' listings shows
which phase differs (e.g. the stock device's SD card against virtio).
Usage: python bench/bootphases.py [--target qemu-arm64-uboot-stock] [--timeout 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cycle import PROMPT, qemu_argv


def main() -> int:
    parser = argparse.ArgumentParser(description="console lines of one boot, timestamped")
    parser.add_argument("--target", default="qemu-arm64-uboot")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ab-bench-") as tmp:
        argv = qemu_argv(args.target, Path(tmp))
        started = time.monotonic()
        child = pexpect.spawn(
            argv[0], argv[1:], timeout=args.timeout, encoding="utf-8", codec_errors="replace"
        )
        try:
            while True:
                which = child.expect(["\r\n", PROMPT])
                line = child.before.strip()
                now = time.monotonic() - started
                if line:
                    print(f"{now:6.3f} {line[:150]}")
                if which == 1:
                    print(f"{now:6.3f} (prompt)")
                    return 0
        except pexpect.TIMEOUT:
            print(f"bench: no prompt within {args.timeout:.0f} s", file=sys.stderr)
            return 1
        finally:
            child.terminate(force=True)


if __name__ == "__main__":
    raise SystemExit(main())
