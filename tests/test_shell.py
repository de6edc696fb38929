"""The shell vocabulary over labgrid's ShellDriver contract (run → (stdout, stderr, rc))."""

import pytest

from harness.device.shell import Shell
from harness.errors import DeviceError


class RecordingCommandDriver:
    """A stand-in for a CommandProtocol driver: canned answers, commands recorded."""

    def __init__(self, answers: dict[str, tuple[list[str], int]]) -> None:
        self.answers = answers
        self.commands: list[tuple[str, float]] = []

    def run(self, cmd: str, timeout: float = 30.0) -> tuple[list[str], list[str], int]:
        self.commands.append((cmd, timeout))
        lines, code = self.answers[cmd]
        return lines, [], code


def test_exec_merges_stderr_and_returns_code_and_text() -> None:
    driver = RecordingCommandDriver({"fw_printenv 2>&1": (["a=1\r", "b=2"], 0)})

    assert Shell(driver).exec("fw_printenv", timeout_s=7) == (0, "a=1\nb=2")
    assert driver.commands == [("fw_printenv 2>&1", 7)]


def test_exec0_raises_one_line_naming_command_code_and_last_output_line() -> None:
    driver = RecordingCommandDriver({"false 2>&1": (["first", "the reason"], 3)})

    with pytest.raises(DeviceError) as err:
        Shell(driver).exec0("false")

    message = str(err.value)
    assert "\n" not in message
    assert "exit 3" in message and "false" in message and "the reason" in message


def test_env_reads_and_sets_with_quoting() -> None:
    driver = RecordingCommandDriver({
        'printf %s "${SLOT}" 2>&1': (["B"], 0),
        "export SLOT='a b' 2>&1": ([], 0),
    })  # fmt: skip
    shell = Shell(driver)

    assert shell.env("SLOT") == "B"
    assert shell.env("SLOT", "a b") == "a b"
