"""The reference image's update agent (`ab-update`), in the harness's words.

Everything the harness knows about the agent's command line and its
console lines lives here, so a different client is a different module.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

_SHA256 = re.compile(r"^ab-update: sha256 (?P<sha>[0-9a-f]{64})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ShellAgent:
    """`ab-update install SRC SHA256`, which prints `ab-update: sha256 HEX`."""

    command: str = "ab-update"

    def install_command(self, source: str, sha256: str) -> str:
        return f"{self.command} install {shlex.quote(source)} {shlex.quote(sha256)}"

    def before_health_pattern(self, slot: str) -> str:
        """The console line a slot's init prints after it came up and before
        the health check runs (a regex)."""
        return rf"ab-init: slot={slot} "

    def streamed_sha256(self, output: str) -> str | None:
        """The hash the agent computed while writing, or None if it printed none."""
        match = _SHA256.search(output)
        return match.group("sha") if match else None
