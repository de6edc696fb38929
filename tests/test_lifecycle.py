"""QEMU never outlives the test that started it: not after a failure, a hung
guest, a pytest-timeout, Ctrl-C, or a SIGKILL of pytest itself.

Every inner run writes its evidence (and so its per-test disk image) under a
directory unique to the outer test; a QEMU is "ours" when that directory is
on its command line. Where the inner pytest survives the test, a second inner
test looks for the QEMU from inside the same process: gone there means the
harness stopped it in teardown, not that it died with pytest.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.images import default_cache_dir
from harness.options import option

# Read now: pytester points HOME at its own directory, which moves ~/.cache.
DEFAULT_CACHE = default_cache_dir()

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(
        shutil.which("qemu-system-aarch64") is None, reason="qemu-system-aarch64 not installed"
    ),
]


def qemu_pids(marker: str) -> list[int]:
    """Live (non-zombie) qemu-system processes with `marker` in their command line."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):  # exited while we looked
            continue
        program = os.path.basename(argv[0]).decode(errors="replace")
        if (
            state != "Z"
            and program.startswith("qemu-system")
            and any(marker.encode() in arg for arg in argv)
        ):
            found.append(int(proc.name))
    return found


# Runs inside the inner pytest, after the booting test has been torn down.
NO_QEMU_LEFT = f"""
import os
from pathlib import Path

{inspect.getsource(qemu_pids)}

def test_no_qemu_left_after_teardown(pytestconfig):
    assert qemu_pids(str(pytestconfig.option.basetemp)) == []
"""


def with_no_qemu_check(tests: str) -> str:
    """Inner test source: `tests`, then the check that their QEMU is gone."""
    return textwrap.dedent(tests) + NO_QEMU_LEFT


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.05)


@dataclass
class Inner:
    """An inner pytest run with its own evidence directory."""

    pytester: pytest.Pytester
    results: Path
    cache: str

    @property
    def basetemp(self) -> Path:
        return self.pytester.path / "basetemp"

    @property
    def marker(self) -> str:
        # Each test's disk copy lives in its tmp_path, under the inner run's
        # basetemp, and QEMU's command line names it: that is how we find it.
        return str(self.basetemp)

    def args(self) -> list[str]:
        # --opt=VALUE: a separate VALUE would be taken for a test path when
        # pytest picks its rootdir, before the plugin's options are known.
        return [
            "-p",
            "no:labgrid",
            f"--ab-results={self.results}",
            f"--ab-cache={self.cache}",
            f"--basetemp={self.basetemp}",
        ]

    def run(self, *extra: str) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess(*self.args(), *extra, timeout=120)

    def evidence(self, nodeid: str) -> Path:
        return self.results / "latest" / nodeid.replace("::", "-")


@pytest.fixture
def inner(pytester: pytest.Pytester, pytestconfig: pytest.Config) -> Iterator[Inner]:
    cache = option(pytestconfig, "ab_cache") or str(DEFAULT_CACHE)
    run = Inner(pytester, pytester.path / "results", cache)
    yield run
    leftovers = qemu_pids(run.marker)
    for pid in leftovers:  # do not let a broken harness slow down the next test
        os.kill(pid, signal.SIGKILL)
    assert leftovers == [], f"QEMU left running: {leftovers}"


def test_failing_test_stops_its_qemu_in_teardown(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_inner=with_no_qemu_check("""
        def test_fails_after_boot(booted):
            assert False, "the scenario failed"
        """)
    )

    result = inner.run()

    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*AssertionError: the scenario failed*"])
    serial = inner.evidence("test_inner.py::test_fails_after_boot") / "serial.log"
    assert b"ab-init: ready slot=A" in serial.read_bytes()  # it did boot
    assert qemu_pids(inner.marker) == []


def test_hung_guest_fails_within_the_boot_timeout(inner: Inner) -> None:
    inner.pytester.makepyfile(
        test_inner=with_no_qemu_check("""
        import time

        import pytest

        from harness.device.boot import ABBootStrategy
        from harness.machines.qemu import ABQEMUDriver
        from harness.machines.qmp import QmpChannel

        def test_guest_freezes_before_reboot(booted, target):
            # The 5 s limit for the frozen boot only: the first boot may be slow
            # on a loaded machine.
            target.get_driver(ABBootStrategy).boot_timeout = 5
            qemu = target.get_driver(ABQEMUDriver)
            with QmpChannel.connect(qemu.qmp_socket) as qmp:
                qmp.execute("stop")
                assert qmp.execute("query-status")["status"] == "paused"  # frozen, for real
            started = time.monotonic()
            try:
                booted.reboot()
            finally:
                print(f"reboot gave up after {time.monotonic() - started:.2f} s")
        """)
    )

    # Fixed deadlines: the bound below is the floor itself, not the floor at the
    # pace of a host that another worker may be loading (tests/test_pace.py).
    result = inner.run("--ab-pace=fixed")

    result.assert_outcomes(failed=1, passed=1)
    gave_up = re.search(r"reboot gave up after ([\d.]+) s", result.stdout.str())
    assert gave_up is not None, result.stdout.str()
    assert 5.0 <= float(gave_up.group(1)) < 8.0
    result.stdout.fnmatch_lines(
        [
            "E   *DeviceError: device hung: * not ready within 5 s",
            "E   *last serial lines:",
        ],
        consecutive=True,
    )
    # What follows is the real console of this QEMU up to the freeze.
    tail = result.stdout.str().split("last serial lines:\n", 1)[1].split("\n\n", 1)[0]
    assert re.search(r"^E +ab-init: ready slot=A version=1$", tail, flags=re.MULTILINE)
    assert re.search(r"^E +ab-shell# ", tail, flags=re.MULTILINE)
    # The hang is the whole report: no pexpect TIMEOUT chained in front of it.
    assert "pexpect.exceptions.TIMEOUT" not in result.stdout.str()
    assert qemu_pids(inner.marker) == []


SLEEPS_AFTER_BOOT = """
import time

def test_sleeps_after_boot(booted):
    print("booted, sleeping", flush=True)
    time.sleep(60)
"""


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    output: Path
    qemu: int


SPAMS_THEN_SLEEPS = """
import time

def test_sleeps_after_boot(booted, shell):
    # The guest floods its console and nobody reads it: QEMU's socket fills,
    # the state in which it used to ignore SIGTERM for 10 s.
    shell.exec0("(while true; do echo spam spam spam spam; done) > /dev/ttyAMA0 2>&1 &")
    print("booted, sleeping", flush=True)
    time.sleep(60)
"""


def _default_sigint() -> None:  # pragma: no cover - runs in the child before exec
    # A background job inherits SIGINT as ignored, and Python keeps it so:
    # the inner pytest must get a real Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_and_wait_for_boot(inner: Inner, body: str = SLEEPS_AFTER_BOOT) -> Running:
    """Start an inner pytest whose test boots and sleeps; return once it sleeps."""
    inner.pytester.makepyfile(test_inner=body)
    output = inner.pytester.path / "inner-output.txt"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", *inner.args(), "-s", "test_inner.py"],
            cwd=inner.pytester.path,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell gives a job
            preexec_fn=_default_sigint,
        )
    # These waits only guard against an inner run that never gets going: the
    # inner harness has its own boot deadline, which follows this host's pace
    # (a loaded CI host boots the guest in well over 30 s), and fails first.
    try:
        wait_for("QEMU started", lambda: bool(qemu_pids(inner.marker)), 60)
        wait_for("the guest booted", lambda: b"booted, sleeping" in output.read_bytes(), 110)
    except BaseException:
        process.kill()
        process.wait()
        raise
    (qemu,) = qemu_pids(inner.marker)
    return Running(process, output, qemu)


# pytest_unconfigure runs after the interrupted session's fixtures are torn
# down and before pytest exits (when PR_SET_PDEATHSIG would kill QEMU anyway).
QEMU_AT_UNCONFIGURE = f"""
import os
from pathlib import Path

{inspect.getsource(qemu_pids)}

def pytest_unconfigure(config):
    left = qemu_pids(str(config.option.basetemp))
    Path("qemu-at-unconfigure.txt").write_text(repr(left))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_qemu_fast(inner: Inner, sig: int) -> None:
    inner.pytester.makeconftest(QEMU_AT_UNCONFIGURE)
    running = start_and_wait_for_boot(inner, SPAMS_THEN_SLEEPS)
    # QEMU has its own session, so Ctrl-C reaches pytest alone and pytest stops QEMU.
    assert os.getpgid(running.qemu) != running.process.pid
    time.sleep(1.0)  # let the unread console fill up

    sent = time.monotonic()
    os.killpg(running.process.pid, sig)  # SIGINT: what Ctrl-C in a terminal does
    try:
        wait_for("QEMU gone", lambda: qemu_pids(inner.marker) == [], 10)
        stopped_s = time.monotonic() - sent
        code = running.process.wait(timeout=20)
    finally:
        running.process.kill()
        running.process.wait()

    # Under 1 s on a quiet machine (bench/interrupts.py: 20 of 20, max 0.66 s);
    # the test allows 3 s for a loaded CI machine, and still catches the old
    # 10 s SIGTERM stall.
    assert stopped_s < 3.0, f"QEMU took {stopped_s:.2f} s to stop"

    output = running.output.read_text()
    assert code == pytest.ExitCode.INTERRUPTED, output
    assert "KeyboardInterrupt" in output
    assert "ab-harness summary" in output  # the run's summary is printed, interrupted or not
    assert (inner.pytester.path / "qemu-at-unconfigure.txt").read_text() == "[]"
    # Teardown ran: the evidence was written after the drivers were deactivated.
    evidence = inner.evidence("test_inner.py::test_sleeps_after_boot")
    assert "boot #1" in (evidence / "timeline.txt").read_text()
    assert b"ab-init: ready slot=A" in (evidence / "serial.log").read_bytes()
    assert qemu_pids(inner.marker) == []


def test_sigkill_of_pytest_takes_qemu_down(inner: Inner) -> None:
    running = start_and_wait_for_boot(inner)

    running.process.kill()
    running.process.wait()

    # No teardown runs after SIGKILL (no evidence written): only
    # PR_SET_PDEATHSIG can stop QEMU.
    wait_for("QEMU died with pytest", lambda: qemu_pids(inner.marker) == [], 5)
    assert not (inner.evidence("test_inner.py::test_sleeps_after_boot") / "timeline.txt").exists()


PAST_ITS_TIMEOUT = """
import time

import pytest

@pytest.mark.timeout(20)
def test_sleeps_past_its_timeout(booted):
    print("booted, sleeping", flush=True)
    time.sleep(60)
"""


@pytest.mark.nightly
def test_pytest_timeout_stops_qemu_fast(inner: Inner) -> None:
    running = start_and_wait_for_boot(inner, PAST_ITS_TIMEOUT)
    try:
        # pytest-timeout prints its banner the moment it fires.
        wait_for("pytest-timeout fired", lambda: b"Timeout" in running.output.read_bytes(), 40)
        fired = time.monotonic()
        wait_for("QEMU gone", lambda: qemu_pids(inner.marker) == [], 10)
        stopped_s = time.monotonic() - fired
        running.process.wait(timeout=30)
    finally:
        running.process.kill()
        running.process.wait()

    assert stopped_s < 3.0, f"QEMU took {stopped_s:.2f} s to stop after the timeout"
    text = running.output.read_text()
    assert "Timeout (>20.0s) from pytest-timeout" in text
    assert "1 failed" in text
