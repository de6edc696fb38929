"""Acquire, release and contention of a labgrid place, with labgrid's real
coordinator on the loopback (harness.lab.place)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import LabUnavailableError
from harness.lab.place import acquired_place, client, holder, labgrid_client

PLACE = "ab-test-place"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[str]:
    """labgrid's coordinator on a free loopback port, with one empty place; stopped after."""
    address = f"127.0.0.1:{free_port()}"
    coordinator_bin = Path(labgrid_client()).with_name("labgrid-coordinator")
    proc = subprocess.Popen(
        [str(coordinator_bin), "-l", address],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while client(address, PLACE, "create")[0] != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "coordinator did not start"
            time.sleep(0.2)
        yield address
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def as_other(address: str, *args: str) -> None:
    subprocess.run(
        [labgrid_client(), "-x", address, "-p", PLACE, *args],
        env={**os.environ, "LG_USERNAME": "other-run"},
        check=True,
        capture_output=True,
    )


def test_acquired_for_the_block_and_released_on_every_exit(coordinator: str) -> None:
    assert holder(coordinator, PLACE) is None
    with acquired_place(coordinator, PLACE, wait_s=5):
        me = holder(coordinator, PLACE)
        assert me is not None and not me.endswith("/other-run")
    assert holder(coordinator, PLACE) is None

    with pytest.raises(RuntimeError), acquired_place(coordinator, PLACE, wait_s=5):
        raise RuntimeError("the test failed")
    assert holder(coordinator, PLACE) is None  # released on the error path too


def test_a_taken_place_is_waited_for_then_named_with_its_holder(coordinator: str) -> None:
    as_other(coordinator, "acquire")
    started = time.monotonic()
    with pytest.raises(LabUnavailableError) as info, acquired_place(coordinator, PLACE, 2.0, 0.5):
        pytest.fail("acquired a place someone else holds")
    waited = time.monotonic() - started
    assert 2.0 <= waited < 10, waited
    line = str(info.value)
    assert "\n" not in line
    assert f"place {PLACE} on {coordinator} is held by " in line and "/other-run;" in line
    assert holder(coordinator, PLACE).endswith("/other-run")  # type: ignore[union-attr]


@pytest.mark.nightly
def test_the_wait_ends_when_the_holder_releases(coordinator: str) -> None:
    as_other(coordinator, "acquire")
    releaser = threading.Timer(1.5, as_other, (coordinator, "release"))
    releaser.start()
    try:
        with acquired_place(coordinator, PLACE, wait_s=20, poll_s=0.5):
            assert not str(holder(coordinator, PLACE)).endswith("/other-run")
    finally:
        releaser.join()
    assert holder(coordinator, PLACE) is None


HOLDER = """
import sys
from harness.lab.place import acquired_place
with acquired_place(sys.argv[1], sys.argv[2], wait_s=10):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_two_runs_of_one_user_on_one_host_do_not_share_the_place(
    coordinator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """labgrid knows a holder as host/user: each run acquires as a user of its own."""
    monkeypatch.delenv("LG_USERNAME", raising=False)
    repo = Path(__file__).resolve().parent.parent
    other = subprocess.Popen(
        [sys.executable, "-c", HOLDER, coordinator, PLACE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "held"
        with pytest.raises(LabUnavailableError) as info, acquired_place(coordinator, PLACE, 1.0):
            pytest.fail("a second run of the same user got the place while the first held it")
        assert f".run{other.pid};" in str(info.value)
    finally:
        assert other.stdin is not None
        other.stdin.write("done\n")
        other.stdin.close()
        other.wait(30)
    assert holder(coordinator, PLACE) is None  # the first run released it at its end
    assert "LG_USERNAME" not in os.environ
