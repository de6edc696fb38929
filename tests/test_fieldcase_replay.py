"""Replay of a captured mid-rollback device reproduces the original transitions.

The device is put where a field failure leaves one: a healthy update (v2)
installed, but the agent's record of the install lost (as when /data is
re-created), so on the trial boot of B its health check passes and the commit
is refused. The device then sits at a shell on B with upgrade_available=1,
bootcount=1: its next boot rolls back. It is captured over its shell, its next
boots are recorded, and a fresh VM built from the bundle alone must do exactly
the same, boot by boot, each boot judged by the oracle.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.fieldcase import differences, judged, replay
from harness.fieldcase.bundle import load

pytestmark = pytest.mark.qemu


def _captured_mid_rollback_replays_the_same(
    booted: Any,
    push: Any,
    shell: Any,
    payloads: Any,
    field_capture: Any,
    bootloader: Any,
    ab_target_spec: Any,
    ab_image: Any,
    tmp_path: Path,
    reboots: int,
) -> None:
    assert push.install(payloads["v2"]).ok
    shell.exec0("rm /data/ab-update/installed && sync")  # the agent will refuse to commit
    trial = booted.reboot()[-1]
    assert (trial.bootloader_slot, trial.running_slot) == ("B", "B")
    assert (trial.bootcount, trial.upgrade_available) == (1, True)

    bundle = field_capture(tmp_path / "bundle")
    assert (bundle.env_device["upgrade_available"], bundle.env_device["bootcount"]) == ("1", "1")
    assert bundle.running_slot == "B"
    assert bundle.slots["B"].sha256 == payloads["v2"].sha256
    assert [s.present for s in bundle.client_state] == [False]
    assert load(bundle.path) == bundle  # what was written reads back whole

    seen = len(booted.history)
    for _ in range(1 + reboots):
        booted.reboot()
    original = judged(booted.history[seen:], bootloader, ab_target_spec.slots)
    booted.power_cut()  # one QEMU at a time: the replay starts its own

    result = replay(
        bundle, ab_target_spec, ab_image, bootloader, tmp_path / "replay", reboots=reboots
    )

    print("\n".join(result.lines()))
    device = tuple(b.boot for b in original)
    assert result.transitions == device, differences(device, result.transitions)
    assert result.kept_contract and all(b.violation is None for b in original)
    rollback = result.transitions[0]
    assert (rollback.slot, rollback.upgrade_available, rollback.running_slot) == ("A", False, "A")
    assert result.disk.slots_from["B"].startswith("v2 ")


@pytest.fixture
def replay_mid_rollback(
    booted: Any,
    push: Any,
    shell: Any,
    payloads: Any,
    field_capture: Any,
    bootloader: Any,
    ab_target_spec: Any,
    ab_image: Any,
    tmp_path: Path,
) -> Callable[[int], None]:
    """The capture-and-replay check on this test's target, following `reboots` more boots."""
    return functools.partial(
        _captured_mid_rollback_replays_the_same,
        booted, push, shell, payloads, field_capture, bootloader, ab_target_spec, ab_image,
        tmp_path,
    )  # fmt: skip


def test_replay_of_a_captured_mid_rollback_device_reproduces_its_transitions(
    replay_mid_rollback: Callable[[int], None],
) -> None:
    """Field replay's proof, cheap enough for `make test`: the next boot (the rollback)."""
    replay_mid_rollback(0)


@pytest.mark.nightly
@pytest.mark.ab_target("qemu-x86_64-grub")
def test_capture_and_replay_on_grub(replay_mid_rollback: Callable[[int], None]) -> None:
    """The same on GRUB (whose rollback resets bootcount), one boot further."""
    replay_mid_rollback(1)


@pytest.mark.nightly
def test_a_replay_that_never_reaches_a_shell_reports_every_boot(tmp_path: Path) -> None:
    """A bundle edited into a boot loop (v2-bad pending in B, bootlimit=0): the
    replay stops after max_boots and still reports each boot, judged."""
    from dataclasses import replace

    from harness.bootloaders import bootloader_for
    from harness.envformat import encode_env, parse_env_copies
    from harness.fieldcase.bundle import write_manifest, write_raw
    from harness.images import ensure_image
    from harness.targets.target import load_target

    spec = load_target("qemu-arm64-uboot")
    image = ensure_image("arm64-uboot")
    source = load(Path(__file__).resolve().parent.parent / "scenarios/bundles/lost-install-record")
    blobs = source.env_bytes()
    env = parse_env_copies([blobs[f] for f in spec.env.files], "bundle", size=spec.env.size)
    newest = spec.env.files[env.copy_index]
    looping = encode_env({**env.vars, "bootlimit": "0"}, spec.env.size, redundant_flags=env.flags)
    folder = tmp_path / "loop"
    files = tuple(
        write_raw(folder, f.file, looping if f.name == newest else blobs[f.name], f.name, "")
        for f in source.env_files
    )
    bad = image.payloads["v2-bad"]
    slots = {
        **source.slots,
        "B": replace(source.slots["B"], sha256=bad.sha256, version=bad.version),
    }
    edited = {**env.vars, "bootlimit": "0"}
    write_manifest(replace(source, path=folder, env_files=files, env_device=edited, slots=slots))
    bootloader = bootloader_for(spec.bootloader, spec.env)

    result = replay(load(folder), spec, image, bootloader, tmp_path / "replay", max_boots=2)

    print("\n".join(result.lines()))
    assert result.stopped is not None
    assert [(b.slot, b.bootcount, b.reached_shell) for b in result.transitions] == [
        ("B", 2, False),
        ("B", 3, False),
    ]
    assert result.kept_contract
    assert result.disk.slots_from["B"].startswith("v2-bad ")
