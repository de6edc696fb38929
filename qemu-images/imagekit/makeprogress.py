"""Run a Kbuild `make` (the kernel's or U-Boot's) and say how far it got.

A first build takes minutes; a person watching it should see it move. Kbuild
prints one short line per compiled object (`  CC      drivers/mmc/mmc.o`),
so counting them against the number a build of that configuration is known
to compile gives a percentage without slowing the build. The count is about:
the real total is reported at the end.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imagekit.run import BuildError, need

PROGRESS_EVERY_S = 15.0
# Kbuild's short lines for a compiled object (`  CC      drivers/mmc/mmc.o`).
_OBJECT = re.compile(r"^\s+(CC|AS)\s+\S+\.o$")


@dataclass
class MakeRun:
    """What a build reports: `name` prefixes its lines (`kernel`, `u-boot`)."""

    name: str
    expected_objects: int
    timeout_s: float = 3600.0
    loads: list[float] = field(default_factory=list)


def make_with_progress(
    run: MakeRun, argv: list[str], tree: Path, env: dict[str, str], say: Callable[[str], None]
) -> int:
    """Run `argv` in `tree`, saying the objects compiled every PROGRESS_EVERY_S; their count."""
    say(f"{run.name}: {' '.join(argv)}")
    run.loads.append(os.getloadavg()[0])
    deadline = time.monotonic() + run.timeout_s
    tail: deque[str] = deque(maxlen=20)
    objects = 0
    last = time.monotonic()
    pending = b""
    proc = subprocess.Popen(
        [need(argv[0]), *argv[1:]], cwd=tree, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                raise BuildError(
                    f"{run.name}: make did not finish within {run.timeout_s:.0f} s"
                    " — fix: check the machine's load and free disk space"
                )
            if now - last >= PROGRESS_EVERY_S:
                last = now
                run.loads.append(os.getloadavg()[0])
                share = min(99, 100 * objects // max(1, run.expected_objects))
                say(
                    f"{run.name}: compiled {objects} of about {run.expected_objects}"
                    f" objects ({share}%)"
                )
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                objects += bool(_OBJECT.match(line))
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run.loads.append(os.getloadavg()[0])
    if rc != 0:
        errors = [line for line in tail if "error" in line.lower()] or list(tail)[-3:]
        raise BuildError(
            f"{run.name}: make failed: {' | '.join(errors[-3:])}"
            " — fix: see the error; a missing host header names its -dev package"
        )
    return objects
