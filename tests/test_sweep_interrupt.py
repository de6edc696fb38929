"""An interrupted sweep ends every process it started: Ctrl-C (SIGINT) or a
CI's SIGTERM to `ab-harness sweep` while its workers boot crash states, and
within seconds no worker and no QEMU of it is left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu

REPO = Path(__file__).resolve().parent.parent


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (read from /proc, no tools)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def is_qemu(pid: int) -> bool:
    try:
        return b"qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    "sig",
    [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.nightly)],
    ids=["ctrl-c", "sigterm"],
)
def test_an_interrupted_sweep_leaves_no_worker_and_no_qemu(tmp_path: Path, sig: int) -> None:
    cmd = [sys.executable, "-c", "from harness.entry import main; raise SystemExit(main())"]
    sweep = subprocess.Popen(
        [*cmd, "sweep", "--target", "qemu-arm64-uboot", "--mode", "quick", "--out", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started: set[int] = set()
    try:
        assert sweep.stdout is not None
        deadline = time.monotonic() + 240
        # Wait until the workers boot crash states: a QEMU whose parent is a worker.
        while time.monotonic() < deadline:
            below = descendants(sweep.pid)
            if any(is_qemu(p) and parent(p) != sweep.pid for p in below):
                started = below
                break
            if sweep.poll() is not None:
                pytest.fail(f"the sweep ended before booting a crash state: {sweep.stdout.read()}")
            time.sleep(0.2)
        assert started, "no worker booted a crash state within 240 s"
        os.kill(sweep.pid, sig)
        sweep.wait(timeout=30)
        gone_by = time.monotonic() + 10
        while time.monotonic() < gone_by and any(alive(p) for p in started):
            time.sleep(0.1)
        left = sorted(p for p in started if alive(p))
        assert not left, [Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in left]
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait(timeout=30)
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
