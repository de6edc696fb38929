"""Mender state scripts as fault hooks: an artifact whose ArtifactInstall_Enter
fails never points the env at the new slot; one whose ArtifactCommit_Enter
fails is rolled back by the client itself. Every script of the artifact logs
its own name to /data, so the order they ran in is read from the device and
checked against Mender 3.4's standalone state machine (app/standalone.go)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.artifacts.builder import ArtifactSpec
from harness.clients.mender import artifact_for, key_for, mender_target

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.nightly,
    pytest.mark.ab_client("mender"),
    pytest.mark.ab_target("qemu-arm64-uboot"),
]

LOG = "/data/ab-state-scripts.log"
STATES = [
    "ArtifactInstall_Enter",
    "ArtifactInstall_Leave",
    "ArtifactInstall_Error",
    "ArtifactCommit_Enter",
    "ArtifactCommit_Leave",
    "ArtifactCommit_Error",
    "ArtifactRollback_Enter",
    "ArtifactRollback_Leave",
    "ArtifactFailure_Enter",
    "ArtifactFailure_Leave",
]


def scripts(folder: Path, failing: str) -> tuple[Path, ...]:
    """One script per state, each logging its state; the `failing` one exits 1."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for state in STATES:
        path = folder / f"{state}_10_log"
        fail = "exit 1" if state == failing else "exit 0"
        path.write_text(f"#!/bin/sh\necho {state} >> {LOG}\nsync\n{fail}\n")
        out.append(path)
    return tuple(out)


def install_with_scripts(push, update_client, shell, payload, folder, failing):
    target = mender_target(payload)
    spec = ArtifactSpec(
        name=f"ab-harness-v2-{failing}",
        device_types=(target.device_type,),
        state_scripts=scripts(folder, failing),
    )
    artifact = artifact_for(payload, spec, tag=f"-{failing}")
    attached = push.attach(key_for(artifact, f"v2 with {failing} failing"))
    return update_client.install(shell, attached.device_path, payload.sha256, 180.0)


def ran(shell) -> list[str]:
    return shell.exec0(f"cat {LOG} 2>/dev/null || true").split()


def test_a_failing_artifactinstall_enter_leaves_the_env_alone(
    booted, push, observe, shell, update_client, payloads, tmp_path
):
    env_before = observe.env_host("before")

    result = install_with_scripts(
        push, update_client, shell, payloads["v2"], tmp_path, "ArtifactInstall_Enter"
    )

    assert not result.ok, result.output
    # Enter failed: its Error script, then the rollback states (the rootfs
    # module finds upgrade_available=0 and switches nothing) and the failure
    # states. Slot B was written already: the payload goes in during Download.
    assert ran(shell) == [
        "ArtifactInstall_Enter",
        "ArtifactInstall_Error",
        "ArtifactRollback_Enter",
        "ArtifactRollback_Leave",
        "ArtifactFailure_Enter",
        "ArtifactFailure_Leave",
    ]
    assert observe.env_host("after").vars == env_before.vars
    assert [b.running_slot for b in booted.reboot()] == ["A"]


def test_a_failing_artifactcommit_enter_is_rolled_back_by_the_client(
    booted, push, observe, shell, update_client, payloads, tmp_path
):
    result = install_with_scripts(
        push, update_client, shell, payloads["v2"], tmp_path, "ArtifactCommit_Enter"
    )
    assert result.ok, result.output
    assert ran(shell) == ["ArtifactInstall_Enter", "ArtifactInstall_Leave"]

    # The trial boot's health check passes and runs `mender commit`, whose
    # ArtifactCommit_Enter fails: the client points the env back at A itself
    # (standalone mode has no ArtifactRollbackReboot: B runs on until a reboot).
    first = booted.reboot()
    assert [(b.bootloader_slot, b.running_slot) for b in first] == [("B", "B")]
    assert ran(shell)[2:] == [
        "ArtifactCommit_Enter",
        "ArtifactCommit_Error",
        "ArtifactRollback_Enter",
        "ArtifactRollback_Leave",
        "ArtifactFailure_Enter",
        "ArtifactFailure_Leave",
    ]
    env = observe.env_host("rolled back by the client")
    assert (env.boot_part, env.upgrade_available) == (2, False)

    assert [(b.bootloader_slot, b.running_slot) for b in booted.reboot()] == [("A", "A")]


def test_a_power_cut_inside_artifactcommit_leave_keeps_the_committed_update(
    booted, push, observe, shell, update_client, payloads, faults, tmp_path
):
    """The commit is written before ArtifactCommit_Leave runs, so a power cut in
    that script must find the update committed: Mender documents Leave scripts
    as running after the state's work is done (an error there rolls nothing back).
    The cut comes before the harness's own ArtifactCommit_Leave_50 script (the
    second-copy commit), so only the newest env copy says committed."""
    folder = tmp_path / "scripts"
    folder.mkdir()
    hang = folder / "ArtifactCommit_Leave_10_hang"
    hang.write_text(
        "#!/bin/sh\necho 'ab-state: ArtifactCommit_Leave running' > /dev/console\nsleep 60\n"
    )
    target = mender_target(payloads["v2"])
    spec = ArtifactSpec(
        name="ab-harness-v2-cut-in-commit-leave",
        device_types=(target.device_type,),
        state_scripts=(hang,),
    )
    artifact = artifact_for(payloads["v2"], spec, tag="-cut-in-commit-leave")
    attached = push.attach(key_for(artifact, "v2 whose ArtifactCommit_Leave hangs"))
    result = update_client.install(shell, attached.device_path, payloads["v2"].sha256, 180.0)
    assert result.ok, result.output

    with faults.power_cut_on_console(r"ab-state: ArtifactCommit_Leave running") as cut:
        booted.reboot()
    assert cut.proof().fired
    env = observe.env_host("after the cut in ArtifactCommit_Leave")
    assert (env.boot_part, env.upgrade_available) == (3, False), env

    boots = booted.power_on()
    assert [(b.bootloader_slot, b.running_slot) for b in boots] == [("B", "B")]
    assert boots[-1].upgrade_available is False
    assert [(b.bootloader_slot, b.running_slot) for b in booted.reboot()] == [("B", "B")]
