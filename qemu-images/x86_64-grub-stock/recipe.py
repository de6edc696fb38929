"""The stock Mender device on GRUB: the x86_64-grub recipe with the real Mender
client and Mender's own Linux env writer (see based-on, imagekit/mender.py and
x86_64-grub/stock/grub-mender-grubenv).

Usage: python recipe.py --out DIR [--debs DIR]

The same GRUB, disk layout and payloads as qemu-images/x86_64-grub-mender,
with one difference on the Linux side: fw_printenv/fw_setenv behave as
grub-mender-grubenv's do (grub-editenv rewriting each file, lock files checked
against lock.sha256sum, a read restoring a torn copy), where the hardened
images write every block in place. The client commits with one write, as
Mender's does. A target runs it as `qemu-x86_64-grub-stock`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent / "x86_64-grub" / "recipe.py"

if __name__ == "__main__":
    args = [*sys.argv[1:], "--client", "mender", "--env-writer", "stock"]
    raise SystemExit(
        subprocess.call([sys.executable, str(BASE), *args, "--name", "x86_64-grub-stock"])
    )
