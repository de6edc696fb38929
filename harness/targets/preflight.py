"""Everything about a target that can be checked before anything boots.

The pytest plugin runs this once per session for every target the collected
tests use, so a wrong YAML, a missing tool, a bad image cache or a partition
map that does not fit the disk is reported once, in one line, instead of as
a traceback in every test.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from harness.images import ImageSet, ensure_image
from harness.targets.target import TargetSpec, check_against_disk, disk_of, resolve_tools

log = logging.getLogger(__name__)


def preflight(
    spec: TargetSpec,
    *,
    cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ImageSet | None:
    """Check the target can run: tools installed, image built and intact, YAML fits the disk.

    Returns the target's image (built if needed).  Raises the `HarnessError`
    of the first problem found.
    """
    resolve_tools(spec)
    image = (
        ensure_image(spec.image, cache=cache, progress=progress) if spec.image is not None else None
    )
    disk = disk_of(spec, image)
    if disk is not None:
        check_against_disk(spec, disk)
    log.info("target '%s' passed its checks before boot", spec.name)
    return image
