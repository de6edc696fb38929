"""What a person sees while an image builds: one line per build step, with
the time so far, instead of every line the build tools print.

Recipes announce their steps as ``[n/N] what`` lines (see
qemu-images/arm64-uboot/recipe.py); the harness's own lines say
``building image …`` and ``image … ready``. Modes:

- ``steps`` (default): the harness's lines and the step lines, each stamped
  with the seconds since the build began;
- ``quiet`` (default when the ``CI`` environment variable is set): only the
  start and the end (or a failure, which `images` reports anyway);

and in every mode but ``full``'s superset, the kernel's and U-Boot's own
progress (``kernel: compiled 600 of about 1000 objects (60%)``, then
``built in …``): a first build takes minutes and must be seen to move;
- ``full``: every line the recipe prints, stamped.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Literal

Mode = Literal["steps", "quiet", "full"]
MODES: tuple[Mode, ...] = ("steps", "quiet", "full")

_STEP = re.compile(r"^\[\d+/\d+\] ")
_HARNESS = re.compile(r"^(building image '|image '.*' ready)")
_COMPILING = re.compile(r"^\s*(kernel|u-boot)\b[^:]*: (compiled \d+ of about |built in )")


def default_mode() -> Mode:
    """`quiet` under CI (the CI variable is set to anything but false), else `steps`."""
    ci = os.environ.get("CI", "").strip().lower()
    return "quiet" if ci not in ("", "0", "false", "no") else "steps"


def build_progress(
    sink: Callable[[str], None],
    mode: Mode | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[str], None]:
    """A progress callback for `images.ensure_image` that passes on what `mode` keeps."""
    chosen: Mode = mode or default_mode()
    started: list[float] = []

    def progress(line: str) -> None:
        now = clock()
        if not started or line.startswith("building image '"):
            started[:] = [now]
        harness_line = bool(_HARNESS.match(line) or _COMPILING.match(line))
        keep = harness_line or chosen == "full" or (chosen == "steps" and bool(_STEP.match(line)))
        if keep:
            sink(f"{now - started[0]:5.1f} s  {line}")

    return progress
