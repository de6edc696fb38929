"""The 32-bit ARM image with the real Mender client: the arm64-uboot recipe run
with the armhf profile and `--client mender` (see based-on, imagekit/mender.py).

Usage: python recipe.py --out DIR [--debs DIR]

Debian ships mender-client 3.4 for armhf too; everything else is
qemu-images/arm-uboot's. A target runs it with `--ab-client mender`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE = HERE.parent / "arm64-uboot" / "recipe.py"
PROFILE = HERE.parent / "arm-uboot" / "profile.toml"

if __name__ == "__main__":
    args = [*sys.argv[1:], "--profile", str(PROFILE), "--client", "mender"]
    args += ["--name", "arm-uboot-mender"]
    raise SystemExit(subprocess.call([sys.executable, str(BASE), *args]))
