"""A labgrid place acquired for the harness's run on it, and always released.

A board shared through labgrid's coordinator is a *place*: whoever acquired
it owns the board until they release it. A target whose YAML says
`ab-harness.acquire_place_s` lets the harness do that itself around each
test: it acquires the RemotePlace, waits up to that many seconds while
someone else holds it, and releases it on every exit path (a failure, an
error, Ctrl-C, SIGTERM; a SIGKILLed run cannot, and the place then stays
acquired until `labgrid-client -p NAME release --kick`). When the wait runs
out the test fails in one line naming the holder.

It talks to the coordinator through `labgrid-client`, labgrid's own stable
command line (the same one the lab check uses), not its internal Python API.

labgrid knows a holder as host/user, so two runs of one user on one host
would both "hold" the place. Each run therefore acquires as a user of its
own, `USER.runPID` (labgrid's `LG_USERNAME`, set for this process while the
place is held, so labgrid's own RemotePlace in it agrees), unless the user
set `LG_USERNAME` already: a second run then waits, and the holder it names
says which run holds it.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import LabUnavailableError

log = logging.getLogger(__name__)

_CLIENT_TIMEOUT_S = 20.0
_HELD_BY = re.compile(r"already acquired by (?P<holder>\S+?)\.?(?:\s|$)")
_SHOW_ACQUIRED = re.compile(r"^\s*acquired:\s*(?P<holder>\S+)", re.MULTILINE)


def labgrid_client() -> str:
    """labgrid-client beside this Python (a venv that is not activated), or on PATH."""
    beside = Path(sys.executable).parent / "labgrid-client"
    found = str(beside) if beside.is_file() else shutil.which("labgrid-client")
    if found is None:
        raise LabUnavailableError("place", "labgrid-client is not installed", "pip install labgrid")
    return found


def client(address: str, place: str, *args: str) -> tuple[int, str]:
    """Run `labgrid-client -x ADDRESS -p PLACE ARGS...`; (exit code, output)."""
    try:
        proc = subprocess.run(
            [labgrid_client(), "-x", address, "-p", place, *args],
            capture_output=True,
            text=True,
            timeout=_CLIENT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LabUnavailableError(
            "coordinator",
            f"labgrid-client {' '.join(args)} of place {place} got no answer from "
            f"{address} in {_CLIENT_TIMEOUT_S:g} s",
            "check that labgrid-coordinator runs there",
        ) from None
    return proc.returncode, proc.stdout + proc.stderr


def holder(address: str, place: str) -> str | None:
    """Who holds the place now ("host/user"), or None."""
    code, out = client(address, place, "show")
    match = _SHOW_ACQUIRED.search(out)
    if code != 0 or match is None or match["holder"] == "None":
        return None
    return match["holder"]


@contextmanager
def acquired_place(address: str, place: str, wait_s: float, poll_s: float = 1.0) -> Iterator[None]:
    """Hold `place` on the coordinator at `address` for the with-block.

    Waits up to `wait_s` while another user holds it, then raises
    LabUnavailableError naming the holder; any other refusal is raised at once."""
    given = os.environ.get("LG_USERNAME")
    os.environ["LG_USERNAME"] = given or f"{getpass.getuser()}.run{os.getpid()}"
    try:
        with _held(address, place, wait_s, poll_s):
            yield
    finally:
        if given is None:
            os.environ.pop("LG_USERNAME", None)
        else:
            os.environ["LG_USERNAME"] = given


@contextmanager
def _held(address: str, place: str, wait_s: float, poll_s: float) -> Iterator[None]:
    deadline = time.monotonic() + wait_s
    while True:
        code, out = client(address, place, "acquire")
        if code == 0:
            break
        busy = _HELD_BY.search(out)
        if busy is None:
            first = next((ln.strip() for ln in out.splitlines() if ln.strip()), f"exit {code}")
            raise LabUnavailableError(
                "place",
                f"cannot acquire place {place} on {address}: {first}",
                f"create it (labgrid-client -p {place} create) and add its resources",
            )
        if time.monotonic() >= deadline:
            raise LabUnavailableError(
                "place",
                f"place {place} on {address} is held by {busy['holder']}; waited "
                f"{wait_s:g} s (ab-harness.acquire_place_s)",
                "wait for that run to end, or raise acquire_place_s",
            )
        log.info("place %s is held by %s; waiting", place, busy["holder"])
        time.sleep(poll_s)
    log.info("acquired place %s on %s", place, address)
    try:
        yield
    finally:
        code, out = client(address, place, "release")
        if code != 0:
            log.warning("releasing place %s failed: %s", place, out.strip()[-200:])
        else:
            log.info("released place %s", place)
