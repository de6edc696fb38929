"""`make lab-demo`: a shared remote lab on the loopback, and the rollback scenarios run on it.

Starts, each as a process of its own: the virtual board rig (`python -m
harness.lab.rig`), labgrid's own `labgrid-coordinator`, and `labgrid-exporter`
publishing the rig's NetworkSerialPort and NetworkPowerPort as group
`ab-virtual-board`; creates the place `ab-virtual-board` matching them; runs
the rollback scenarios against the place (`-p labgrid --lg-env
lab/virtual-board-remote.yaml --lg-coordinator ...`: the harness acquires
and releases the place); then stops all three, whatever happened, and checks
that none of them is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLACE = "ab-virtual-board"
EXPORTER = "ab-lab"
SCENARIOS = [
    "scenarios/test_failed_health_rolls_back.py",
    "scenarios/test_boot_failures_roll_back.py",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def start(cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    print(f"lab-demo: starting {' '.join(cmd[:3])} … (log {log})", flush=True)
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for(what: str, check, deadline_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"lab-demo: {what} did not come up within {deadline_s:g} s")
        time.sleep(0.3)


def client(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("labgrid-client"), "-x", address, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="ab-lab-demo-"))
    coordinator = f"127.0.0.1:{free_port()}"
    serial_port, power_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        rig_log = work / "rig.log"
        rig = [sys.executable, "-m", "harness.lab.rig", "--workdir", str(work / "board"),
               "--serial-port", str(serial_port), "--power-port", str(power_port)]  # fmt: skip
        procs.append(start(rig, rig_log, REPO))
        wait_for("the rig", lambda: "ready serial=" in rig_log.read_text(errors="replace"), 120)
        procs.append(start([tool("labgrid-coordinator"), "-l", coordinator],
                           work / "coordinator.log", work))  # fmt: skip
        wait_for("the coordinator", lambda: client(coordinator, "places").returncode == 0)
        (work / "exporter.yaml").write_text(
            f"{PLACE}:\n"
            f"  NetworkSerialPort:\n    host: 127.0.0.1\n    port: {serial_port}\n"
            "    protocol: rfc2217\n"
            "  NetworkPowerPort:\n    model: simplerest\n"
            f"    host: 'http://127.0.0.1:{power_port}/outlet/{{index}}/{{value}}'\n"
            "    index: '0'\n"
        )
        procs.append(start([tool("labgrid-exporter"), "-c", coordinator, "-n", EXPORTER,
                            "--hostname", "127.0.0.1", str(work / "exporter.yaml")],
                           work / "exporter.log", work))  # fmt: skip
        wait_for(
            "the exporter's resources",
            lambda: (
                f"{EXPORTER}/{PLACE}/NetworkPowerPort" in client(coordinator, "resources").stdout
            ),
        )
        for args in (["-p", PLACE, "create"], ["-p", PLACE, "add-match", f"{EXPORTER}/{PLACE}/*"]):
            done = client(coordinator, *args)
            if done.returncode != 0:
                raise SystemExit(
                    f"lab-demo: labgrid-client {' '.join(args)}: {done.stderr.strip()}"
                )
        print(f"lab-demo: place {PLACE} on {coordinator} exports the virtual board", flush=True)
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "labgrid", "--lg-env",
             "lab/virtual-board-remote.yaml", "--lg-coordinator", coordinator,
             "-m", "not nightly", *SCENARIOS, *sys.argv[1:]],
            cwd=REPO, env=env, check=False,
        )  # fmt: skip
        return run.returncode
    finally:
        for proc in reversed(procs):
            stop(proc)
        left = [p.pid for p in procs if p.poll() is None]
        shutil.rmtree(work / "board", ignore_errors=True)  # the board's disk; the logs stay
        print(f"lab-demo: stopped rig, coordinator and exporter; left running: {left or 'none'}")
        print(f"lab-demo: logs in {work}")


if __name__ == "__main__":
    sys.exit(main())
