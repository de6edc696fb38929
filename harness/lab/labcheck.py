"""Is the lab there? One look at what a board needs before any test uses it.

A physical board is reached through parts the harness does not own: a
serial port (local, or a ser2net port on the network), a power switch, and
with a labgrid coordinator, a place that must be acquired. When one is
missing, every test on the board fails the same way, deep inside labgrid,
with hundreds of lines of traceback. `check_lab` looks at each part once,
with a short deadline, and says in one line which one is missing and what
to do about it; the plugin runs it once per session and target and turns
the tests that need the board into skips with that line.

QEMU targets need none of this: their parts are checked by `preflight`.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.errors import HarnessConfigError, HarnessError, LabComponent, LabUnavailableError
from harness.targets.target import TargetSpec

DEFAULT_COORDINATOR = "127.0.0.1:20408"
DEADLINE_S = 3.0


@dataclass(frozen=True)
class LabCheck:
    """One part of the lab, looked at: `problem` is None when it is there."""

    component: LabComponent
    what: str
    problem: LabUnavailableError | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        """One line for a person: `ok` or `MISSING`, the part, the cause and the fix."""
        if self.problem is None:
            return f"ok       {self.component}: {self.what}"
        return f"MISSING  {self.component}: {self.problem}"


def _entries(section: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(class name, arguments) of a labgrid resources/drivers section (mapping or list)."""
    items: list[tuple[str, Any]] = []
    if isinstance(section, dict):
        items = list(section.items())
    elif isinstance(section, list):
        items = [kv for entry in section if isinstance(entry, dict) for kv in entry.items()]
    for cls, args in items:
        yield str(cls), args if isinstance(args, dict) else {}


def needs_lab(spec: TargetSpec) -> bool:
    """Whether the target is a board reached through lab parts (not a QEMU of ours,
    nor a virtual board rig, which the harness starts itself for each test)."""
    if spec.rig is not None:
        return False
    main = spec.labgrid.get("targets", {}).get("main", {})
    return not any("QEMUDriver" in cls for cls, _ in _entries(main.get("drivers")))


def coordinator_address(spec: TargetSpec, override: str | None = None) -> str:
    """Where the labgrid coordinator is, by labgrid's own precedence:
    --lg-coordinator, the YAML's options.coordinator_address, LG_COORDINATOR, 127.0.0.1:20408."""
    if override:
        return override
    options = spec.labgrid.get("options") or {}
    if isinstance(options, dict) and options.get("coordinator_address"):
        return str(options["coordinator_address"])
    return os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


def check_lab(
    spec: TargetSpec, *, coordinator: str | None = None, deadline_s: float = DEADLINE_S
) -> list[LabCheck]:
    """Look at every lab part the target's YAML names; each look ends within `deadline_s`."""
    main = spec.labgrid.get("targets", {}).get("main", {})
    checks: list[LabCheck] = []
    for cls, args in _entries(main.get("resources")):
        if cls == "RawSerialPort":
            checks.append(_serial_device(str(args.get("port", "")), spec))
        elif cls == "NetworkSerialPort":
            where = f"{args.get('host')}:{args.get('port')}"
            what = f"serial server {where} (NetworkSerialPort)"
            checks.append(_tcp("console", what, where, spec, deadline_s))
        elif cls == "NetworkPowerPort":
            checks.append(_power_switch(str(args.get("host", "")), spec, deadline_s))
        elif cls == "RemotePlace":
            checks += _place(str(args.get("name", "")), spec, coordinator, deadline_s)
    for cls, args in _entries(main.get("drivers")):
        if cls == "ExternalPowerDriver":
            checks.append(_external_power(str(args.get("cmd_on", "")), spec))
    return checks


def first_problem(checks: list[LabCheck]) -> LabUnavailableError | None:
    return next((c.problem for c in checks if c.problem is not None), None)


def _serial_device(port: str, spec: TargetSpec) -> LabCheck:
    what = f"serial port {port} (RawSerialPort)"
    if Path(port).exists() and os.access(port, os.R_OK | os.W_OK):
        return LabCheck("console", what)
    cause = "does not exist" if not Path(port).exists() else "cannot be opened for read and write"
    return LabCheck(
        "console",
        what,
        LabUnavailableError(
            "console",
            f"target '{spec.name}': serial port {port} {cause}",
            "plug the board's USB serial adapter in (ls /dev/serial/by-id/) and set "
            f"RawSerialPort.port in {spec.path}",
        ),
    )


def _power_switch(host: str, spec: TargetSpec, deadline_s: float) -> LabCheck:
    parts = urlsplit(host if "//" in host else f"//{host}")
    address = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    check = _tcp("power", f"power switch {host} (NetworkPowerPort)", address, spec, deadline_s)
    if check.problem is None:
        return check
    return LabCheck(
        "power",
        check.what,
        LabUnavailableError(
            "power",
            f"target '{spec.name}': power switch {host} is not reachable "
            f"({check.problem.cause.rsplit(': ', 1)[-1]})",
            f"switch it on and connect it, or set NetworkPowerPort.host in {spec.path}",
        ),
    )


def _external_power(cmd_on: str, spec: TargetSpec) -> LabCheck:
    program = shlex.split(cmd_on)[0] if cmd_on.strip() else ""
    what = f"power command {program or '(none)'} (ExternalPowerDriver)"
    if program and shutil.which(program):
        return LabCheck("power", what)
    return LabCheck(
        "power",
        what,
        LabUnavailableError(
            "power",
            f"target '{spec.name}': power command '{program}' is not installed",
            f"install it or fix ExternalPowerDriver.cmd_on in {spec.path}",
        ),
    )


def _tcp(
    component: LabComponent,
    what: str,
    address: str,
    spec: TargetSpec,
    deadline_s: float = DEADLINE_S,
) -> LabCheck:
    host, _, port = address.rpartition(":")
    try:
        _connect(host.strip("[]"), int(port), deadline_s)
    except (OSError, ValueError, TimeoutError) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return LabCheck(
            component,
            what,
            LabUnavailableError(
                component,
                f"target '{spec.name}': {what} at {address}: {reason}",
                "check that it is on and reachable from this host",
            ),
        )
    return LabCheck(component, what)


def _connect(host: str, port: int, deadline_s: float) -> None:
    """TCP connect with a deadline on name resolution too (getaddrinfo has none)."""
    result: list[BaseException | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=deadline_s):
                result.append(None)
        except OSError as err:
            result.append(err)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(deadline_s)
    if not result:
        raise TimeoutError(f"no answer within {deadline_s:.0f} s")
    if result[0] is not None:
        raise result[0]


def _place(name: str, spec: TargetSpec, override: str | None, deadline_s: float) -> list[LabCheck]:
    address = coordinator_address(spec, override)
    coordinator = _tcp("coordinator", f"labgrid coordinator {address}", address, spec, deadline_s)
    if coordinator.problem is not None:
        return [
            LabCheck(
                "coordinator",
                coordinator.what,
                LabUnavailableError(
                    "coordinator",
                    f"target '{spec.name}': labgrid coordinator {address} is not reachable "
                    f"({coordinator.problem.cause.rsplit(': ', 1)[-1]})",
                    "start labgrid-coordinator there, or point --lg-coordinator, LG_COORDINATOR "
                    "or options.coordinator_address at the running one",
                ),
            )
        ]
    return [coordinator, _acquired(name, address, spec)]


def _acquired(name: str, address: str, spec: TargetSpec) -> LabCheck:
    """Ask the coordinator (labgrid-client) whether this user holds the place."""
    what = f"place {name}"
    # Installed beside this Python (a venv that is not activated) or on PATH.
    beside = Path(sys.executable).parent / "labgrid-client"
    client = str(beside) if beside.is_file() else shutil.which("labgrid-client")
    if client is None:
        return LabCheck(
            "place",
            what,
            LabUnavailableError(
                "place",
                "labgrid-client is not installed",
                "pip install labgrid (see pyproject.toml)",
            ),
        )
    try:
        proc = subprocess.run(
            [client, "-x", address, "-p", name, "show"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return LabCheck(
            "place",
            what,
            LabUnavailableError(
                "place",
                f"labgrid-client show of place {name} got no answer from {address} in 15 s",
                "check the coordinator",
            ),
        )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        first = next((ln for ln in output.splitlines() if ln.strip()), f"exit {proc.returncode}")
        return LabCheck(
            "place",
            what,
            LabUnavailableError(
                "place",
                f"target '{spec.name}': place {name} on {address}: {first.strip()}",
                f"create it (labgrid-client -p {name} create) or fix RemotePlace.name in "
                f"{spec.path}",
            ),
        )
    match = re.search(r"^\s*acquired:\s*(\S+)", output, re.MULTILINE)
    holder = match.group(1) if match else "None"
    me = f"{os.environ.get('LG_HOSTNAME') or socket.gethostname()}/" + (
        os.environ.get("LG_USERNAME") or getpass.getuser()
    )
    if holder != me and spec.acquire_place_s is not None:
        # The harness acquires it for each test (waiting while another run holds it).
        return LabCheck("place", f"{what} (exists; acquired by the harness for each test)")
    if holder != me:
        held = "is not acquired" if holder == "None" else f"is acquired by {holder}, not {me}"
        return LabCheck(
            "place",
            what,
            LabUnavailableError(
                "place",
                f"target '{spec.name}': place {name} {held}",
                f"labgrid-client -p {name} acquire (release it elsewhere first)",
            ),
        )
    return LabCheck("place", f"{what} (acquired by {me})")


def explain_labgrid_error(spec: TargetSpec, err: BaseException) -> HarnessError:
    """labgrid's error while building the target, as the harness error that says whose it is."""
    text = " ".join(str(err).split()) or type(err).__name__
    place = re.search(r"place (\S+) is not acquired", text)
    if place:
        return LabUnavailableError(
            "place",
            f"target '{spec.name}': {text}",
            f"labgrid-client -p {place.group(1)} acquire",
        )
    if isinstance(err, ConnectionRefusedError) or "coordinator" in text.lower():
        return LabUnavailableError(
            "coordinator",
            f"target '{spec.name}': {text}",
            "start labgrid-coordinator, or point --lg-coordinator / LG_COORDINATOR at it",
        )
    if "matches nothing" in text:
        return LabUnavailableError(
            "place",
            f"target '{spec.name}': {text}",
            f"create the place (labgrid-client -p NAME create) or fix RemotePlace in {spec.path}",
        )
    return HarnessConfigError(
        f"target '{spec.name}' ({spec.path}): labgrid rejected it: {text}",
        "fix the drivers/resources in the target YAML",
    )
