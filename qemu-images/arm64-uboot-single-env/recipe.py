"""Variant of the reference image with ONE env copy instead of two.

Usage: python recipe.py --out DIR [--debs DIR]

The same image as qemu-images/arm64-uboot (its recipe is run, see based-on),
with the env in a single uboot.env in U-Boot's single-copy layout (CRC32 |
data, no flags byte): every save, U-Boot's and fw_setenv's, overwrites it in
place. It exists so the crash-point sweep can show what that layout costs;
the reference design keeps two copies.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent / "arm64-uboot" / "recipe.py"

if __name__ == "__main__":
    args = [*sys.argv[1:], "--env-copies", "1", "--name", "arm64-uboot-single-env"]
    raise SystemExit(subprocess.call([sys.executable, str(BASE), *args]))
