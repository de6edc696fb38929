"""32-bit ARM reference image: the arm64-uboot recipe run with the armhf profile.

Usage: python recipe.py --out DIR [--debs DIR]

The same A/B design as qemu-images/arm64-uboot (its recipe is run, see
based-on): disk layout, boot script contract, two env copies, agent and
payloads, built from Debian armhf packages and started by Debian's qemu_arm
U-Boot with `bootz`. What differs is all in profile.toml.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = HERE.parent / "arm64-uboot" / "recipe.py"

if __name__ == "__main__":
    args = [*sys.argv[1:], "--profile", str(HERE / "profile.toml"), "--name", "arm-uboot"]
    raise SystemExit(subprocess.call([sys.executable, str(BASE), *args]))
