"""Field cases: capture a device's black box into a bundle, replay it on a fresh VM.

`capture()` reads a running device over its shell into a bundle folder
(`bundle.py` says what is in one); `replay()` rebuilds that state on a copy
of the reference disk (`rebuild.py`, slots from a `PayloadStore`), boots it
and reports each boot, judged by the oracle. A scenario starts from a bundle
with `@pytest.mark.ab_from_bundle(PATH)`.
"""

from harness.fieldcase.bundle import Bundle, BundleError, load
from harness.fieldcase.capture import capture
from harness.fieldcase.replay import (
    JudgedBoot,
    NextBoot,
    ReplayResult,
    differences,
    judged,
    replay,
)
from harness.fieldcase.store import PayloadStore

__all__ = [
    "Bundle",
    "BundleError",
    "JudgedBoot",
    "NextBoot",
    "PayloadStore",
    "ReplayResult",
    "capture",
    "differences",
    "judged",
    "load",
    "replay",
]
