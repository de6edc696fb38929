"""The `ab-harness` command's entry point: answers `--version` before importing
the subcommands (labgrid, QEMU's QMP client and the report stack take about a
second to import), then hands over to `harness.cli`; a reader that closes the
pipe (`ab-harness env show … | head`) ends the command quietly."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from importlib import metadata

        try:
            version = metadata.version("ab-harness")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        print(f"ab-harness {version}")
        return 0
    from harness.cli import main as run

    try:
        status = run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away: what is left to print has nowhere to go. Point
        # stdout at /dev/null so the interpreter's own final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command ended by a closed pipe
    return status
