"""The lab check against real parts: a real labgrid-coordinator on loopback
(down, place unknown, not acquired, acquired), a real serial port (a pty),
a TCP "power switch" on loopback; and a whole pytest run on the example
board with no hardware: the cause once, skips folded into one line,
"infra" in the summary, exit 1, well within 30 s."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import LabUnavailableError, blame
from harness.images import default_cache_dir
from harness.lab.labcheck import check_lab, explain_labgrid_error, first_problem, needs_lab
from harness.targets.target import default_targets_dir, load_target

EXAMPLE = default_targets_dir() / "example-board-uboot.yaml"
BIN = Path(sys.executable).parent
DEFAULT_CACHE = default_cache_dir()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def board(tmp_path: Path, resources: str, name: str = "board") -> Path:
    """The example board with its `resources:` block replaced."""
    text = EXAMPLE.read_text()
    start = text.index("    resources:\n")
    end = text.index("    drivers:\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text[:start] + resources + text[end:])
    return path


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[str]:
    """A real labgrid-coordinator on a free loopback port."""
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [str(BIN / "labgrid-coordinator"), "-l", address],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", int(address.split(":")[1])), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("labgrid-coordinator did not start") from None
                time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        proc.wait(10)


def client(address: str, *args: str) -> None:
    subprocess.run(
        [str(BIN / "labgrid-client"), "-x", address, *args], check=True, capture_output=True
    )


def test_example_board_needs_a_lab_and_qemu_does_not() -> None:
    assert needs_lab(load_target(str(EXAMPLE)))
    assert not needs_lab(load_target("qemu-arm64-uboot"))


def test_coordinator_down_is_named_with_its_own_fix(tmp_path: Path) -> None:
    spec = load_target(str(board(tmp_path, "    resources:\n      RemotePlace: {name: p}\n")))
    problem = first_problem(check_lab(spec, coordinator=f"127.0.0.1:{free_port()}"))

    assert problem is not None and problem.component == "coordinator"
    assert "is not reachable" in problem.cause
    assert "start labgrid-coordinator" in str(problem)
    assert blame(problem) == "infrastructure"


def test_place_unknown_then_not_acquired_then_acquired(tmp_path: Path, coordinator: str) -> None:
    spec = load_target(
        str(board(tmp_path, "    resources:\n      RemotePlace: {name: citizen-place}\n"))
    )

    unknown = first_problem(check_lab(spec, coordinator=coordinator))
    assert unknown is not None and unknown.component == "place"
    assert "matches nothing" in unknown.cause and "labgrid-client -p citizen-place create" in str(
        unknown
    )

    client(coordinator, "-p", "citizen-place", "create")
    not_acquired = first_problem(check_lab(spec, coordinator=coordinator))
    assert not_acquired is not None and not_acquired.component == "place"
    assert "is not acquired" in not_acquired.cause
    assert (
        not_acquired.fix == "labgrid-client -p citizen-place acquire (release it elsewhere first)"
    )

    client(coordinator, "-p", "citizen-place", "acquire")
    checks = check_lab(spec, coordinator=coordinator)
    assert [c.component for c in checks] == ["coordinator", "place"]
    assert all(c.ok for c in checks), [c.line() for c in checks]


def test_labgrids_own_coordinator_error_gets_the_coordinator_hint(tmp_path: Path) -> None:
    """What labgrid raises when the coordinator is down, turned into the lab error."""
    import labgrid

    path = tmp_path / "rp.yaml"
    path.write_text("targets:\n  main:\n    resources:\n      RemotePlace: {name: p}\n")
    os.environ["LG_COORDINATOR"] = f"127.0.0.1:{free_port()}"
    try:
        with pytest.raises(Exception) as raised:
            labgrid.Environment(str(path)).get_target("main")
    finally:
        del os.environ["LG_COORDINATOR"]
    spec = load_target(str(EXAMPLE))
    err = explain_labgrid_error(spec, raised.value)

    assert isinstance(err, LabUnavailableError) and err.component == "coordinator"
    assert "fix the drivers/resources" not in str(err)


def test_serial_port_and_power_switch_present_or_missing(tmp_path: Path) -> None:
    master, slave = os.openpty()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        present = board(
            tmp_path,
            f"    resources:\n      RawSerialPort: {{port: {os.ttyname(slave)}}}\n"
            f"      NetworkPowerPort: {{model: gude, host: '127.0.0.1:{port}', index: 1}}\n",
            "present",
        )
        checks = check_lab(load_target(str(present)))
        assert [(c.component, c.ok) for c in checks] == [("console", True), ("power", True)]
    finally:
        listener.close()
        os.close(master)
        os.close(slave)
    missing = board(
        tmp_path,
        "    resources:\n      RawSerialPort: {port: /dev/ttyNOPE}\n"
        f"      NetworkPowerPort: {{model: gude, host: '127.0.0.1:{port}', index: 1}}\n",
        "missing",
    )
    checks = check_lab(load_target(str(missing)))
    assert [(c.component, c.ok) for c in checks] == [("console", False), ("power", False)]
    assert "serial port /dev/ttyNOPE does not exist" in str(checks[0].problem)
    assert "power switch 127.0.0.1:" in str(checks[1].problem)


def test_example_board_without_hardware_says_why_once_and_finishes_fast(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's bar: `pytest scenarios --ab-target targets/example-board-uboot.yaml`
    with no hardware prints the cause once and finishes within 30 s."""
    monkeypatch.setenv("AB_CACHE_DIR", str(DEFAULT_CACHE))
    scenarios = default_targets_dir().parent / "scenarios"
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p", "no:labgrid", str(scenarios), f"--ab-target={EXAMPLE}", "-rs", timeout=60
    )
    seconds = time.monotonic() - started
    out = result.stdout.str()

    assert seconds < 30, f"took {seconds:.1f} s"
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # a lab that is down is not green
    assert out.count("ab-harness: lab check: MISSING  console:") == 1
    assert "Traceback" not in out and "requests.exceptions" not in out
    result.stdout.fnmatch_lines(
        [
            "*test(s) could not run: the lab is not available*",
            "SKIPPED [[]*[]] *plugin/lab.py:*: lab not available: target 'example-board-uboot': "
            "serial port /dev/ttyUSB0 does not exist — fix: *",
        ]
    )
    assert len([ln for ln in result.outlines if "lab not available" in ln]) == 1  # folded
    assert " infra " in out and " error " not in out


def test_under_xdist_the_lab_skips_still_fail_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AB_CACHE_DIR", str(DEFAULT_CACHE))
    scenarios = default_targets_dir().parent / "scenarios"
    result = pytester.runpytest_subprocess(
        "-p", "no:labgrid", str(scenarios), f"--ab-target={EXAMPLE}", "-n", "2", timeout=120
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["*test(s) could not run: the lab is not available*"])
