"""What the update client believes, read through each adapter from the words
the real client prints, and how a verdict judges it against the slot and env.

The outputs below are what the clients print: `ab-update status` from the
reference image's agent, and Mender 3.4's `show-artifact` and `commit`
(its main() exits 2 with the warning "There is nothing to commit" for
installer.ErrorNothingToCommit; a database holding an update the env no
longer has on trial logs "Commit failed" first)."""

from __future__ import annotations

import re

import pytest

from harness.boot import BootRecord
from harness.bootloaders import BootEnv
from harness.clients import ClientBelief, ClientCheck, ClientResult, MenderClient, ShellAgent
from harness.judgement import Decision
from harness.verdict import outcome


class ScriptedShell:
    """Answers each command by the first pattern it matches; records what ran."""

    def __init__(self, answers: list[tuple[str, int, str]]) -> None:
        self.answers = answers
        self.ran: list[str] = []

    def exec(self, cmd: str, timeout_s: float = 30.0) -> tuple[int, str]:
        self.ran.append(cmd)
        for pattern, code, out in self.answers:
            if re.search(pattern, cmd):
                return code, out
        raise AssertionError(f"unexpected command {cmd!r}")

    def exec0(self, cmd: str, timeout_s: float = 30.0) -> str:
        code, out = self.exec(cmd, timeout_s)
        assert code == 0, (cmd, out)
        return out


STATUS_V2 = "ab-update: slot=B version=2\nmender_boot_part=3\nupgrade_available=0\n"


def test_the_agent_believes_its_status_and_its_state_file() -> None:
    shell = ScriptedShell(
        [(r"ab-update status", 0, STATUS_V2), (r"cat /data/ab-update/installed", 0, "none\n"),
         (r"cat /etc/version", 0, "2\n")]
    )  # fmt: skip
    belief = ShellAgent().believes(shell)

    assert (belief.installed, belief.pending, belief.next_ok) == ("2", False, True)
    assert [r.command for r in belief.evidence] == [
        "ab-update status", "cat /data/ab-update/installed"
    ]  # fmt: skip
    assert ShellAgent().slot_release(shell) == "2"
    assert not any("commit" in cmd for cmd in shell.ran)  # a status query writes nothing


def test_the_agent_with_an_update_on_trial_and_a_failing_status() -> None:
    shell = ScriptedShell(
        [(r"ab-update status", 4, "ab-update: slot=B version=3\nCannot read environment\n"),
         (r"cat /data/ab-update/installed", 0, "B\n")]
    )  # fmt: skip
    belief = ShellAgent().believes(shell)

    assert (belief.installed, belief.pending, belief.next_ok) == ("3", True, False)
    why = belief.disagreement("3", pending=False)
    assert why is not None and why.startswith("client: ")
    assert "believes pending, the env says upgrade_available=0" in why
    assert "its next command failed (ab-update status: exit 4" in why


SHOW_V3 = "ab-harness-v3\n"
# Debian's mender 3.4 on the device, from a sweep's evidence.
NOTHING = (
    "INFO[0000] Mender running on partition: /dev/vda3       \n"
    "ERRO[0000] Could not commit Artifact: There is nothing to commit \n"
    "WARN[0000] There is nothing to commit\n"
)
CONFUSED = (
    "INFO[0000] Mender running on partition: /dev/vda3       \n"
    "Committing Artifact...\n"
    'ERRO[0001] Commit failed: Reboot to the new update failed. Expected "upgrade_available" '
    "flag to be true but it was false. Either the switch to the new partition was "
    "unsuccessful, or the bootloader rolled back \n"
    "Rolling back Artifact...\n"
    "INFO[0001] No update available, so no rollback needed.  \n"
)


@pytest.mark.parametrize(
    ("commit", "believed"),
    [
        ((2, NOTHING), (False, True)),  # settled: the clean answer
        # Its books held an update the env had not, and a second commit fails the same.
        ((1, CONFUSED), (None, False)),
        ((0, "Committing Artifact...\n"), (True, True)),  # it committed one now
        ((1, "\x1b[31mERRO\x1b[0m[0000] Could not commit Artifact: bad db\n"), (None, False)),
        ((97, "ab-harness: upgrade_available=1, no commit probe\n"), (None, True)),
    ],
)
def test_mender_believes_show_artifact_and_what_commit_answers(
    commit: tuple[int, str], believed: tuple[bool | None, bool]
) -> None:
    shell = ScriptedShell(
        [(r"show-artifact", 0, SHOW_V3), (r"commit", *commit),
         (r"artifact_info", 0, "ab-harness-v3\n")]
    )  # fmt: skip
    belief = MenderClient().believes(shell)

    assert (belief.installed, (belief.pending, belief.next_ok)) == ("ab-harness-v3", believed)
    assert MenderClient().slot_release(shell) == "ab-harness-v3"
    # The probe is guarded: no commit while the env has an update on trial.
    assert "fw_printenv -n upgrade_available" in shell.ran[1]


def test_mender_learning_of_a_rollback_at_its_next_commit_settles_its_books() -> None:
    answers = iter([(1, CONFUSED), (2, NOTHING)])
    shell = ScriptedShell([(r"show-artifact", 0, "ab-harness-v2\n")])
    shell.answers.append((r"commit", 0, ""))  # replaced by the sequence below
    base_exec = shell.exec

    def exec_(cmd: str, timeout_s: float = 30.0) -> tuple[int, str]:
        if "commit" in cmd:
            shell.ran.append(cmd)
            return next(answers)
        return base_exec(cmd, timeout_s)

    shell.exec = exec_  # type: ignore[method-assign]
    belief = MenderClient().believes(shell)

    assert (belief.installed, belief.pending, belief.next_ok) == ("ab-harness-v2", False, True)
    assert [r.exit_code for r in belief.evidence] == [0, 1, 2]
    assert "learned of the bootloader's rollback" in belief.describe()
    assert belief.disagreement("ab-harness-v2", pending=False) is None
    # Rolled back or not, a client naming the release the slot does not hold disagrees.
    assert belief.disagreement("ab-harness-v3", pending=False) is not None


def test_mender_reporting_the_old_release_disagrees_by_name() -> None:
    shell = ScriptedShell([(r"show-artifact", 0, "ab-harness-v2\n"), (r"commit", 2, NOTHING)])
    belief = MenderClient().believes(shell)

    assert belief.disagreement("ab-harness-v3", pending=False) == (
        "client: reports 'ab-harness-v2' installed, the running slot holds 'ab-harness-v3'"
    )
    assert belief.disagreement("ab-harness-v2", pending=False) is None


def committed_boot() -> BootRecord:
    return BootRecord(
        index=1, started_at=0.0, line=Decision("B", 1, True),
        health="pass", ready=True, running_slot="B", version="2", ready_at=4.0,
    )  # fmt: skip


ENV = BootEnv({"mender_boot_part": "3", "upgrade_available": "0", "bootcount": "1"}, "test")


def test_a_commit_the_client_disagrees_with_is_not_a_commit() -> None:
    agrees = ClientCheck(ClientBelief("2", False, True), "2")
    confused = ClientCheck(
        ClientBelief("2", True, False, (ClientResult("mender commit", 2, "Commit failed"),)), "2"
    )

    assert outcome("A", [committed_boot()], ENV).committed  # no client read: slot and env only
    assert outcome("A", [committed_boot()], ENV, agrees).committed
    result = outcome("A", [committed_boot()], ENV, confused)
    assert not result.committed
    assert not result.client_agrees
    assert "client: believes pending, the env says upgrade_available=0" in result.describe()
