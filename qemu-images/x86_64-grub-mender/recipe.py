"""The reference image with the real Mender client: the x86_64-grub recipe run
with `--client mender` (see based-on and imagekit/mender.py).

Usage: python recipe.py --out DIR [--debs DIR]

The same disk layout, GRUB script, env contract and payloads as
qemu-images/x86_64-grub, plus Debian's mender-client 3.4 and its libraries
in every slot (56 MiB slots holding a 52 MiB ext4: the client and its
libraries are 23 MB), its config, and its state folder on /data. A target
runs it when its update client is `mender` (`--ab-client mender`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent / "x86_64-grub" / "recipe.py"

if __name__ == "__main__":
    args = [*sys.argv[1:], "--client", "mender", "--name", "x86_64-grub-mender"]
    raise SystemExit(subprocess.call([sys.executable, str(BASE), *args]))
