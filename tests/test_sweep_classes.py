"""The sweep boots one crash state per class of states that leave the same
readable bytes. Shown here on the real image: two members of one class,
whose disks differ, boot alike; and the plan covers what the issue names."""

import pytest

from harness.crashsweep.crashstate import extents
from harness.crashsweep.disklayout import DiskLayout, names_from_manifest
from harness.crashsweep.sweep import Classifier, boot_state, checks_data, crash_points, states_for
from harness.crashsweep.writelog import WriteLog

pytestmark = pytest.mark.qemu


@pytest.mark.nightly
def test_two_members_of_one_class_boot_alike(
    update_recording, ab_target_spec, ab_image, bootloader, tmp_path
):
    wlog = WriteLog.open(update_recording.log)
    layout = DiskLayout.read(update_recording.base, names_from_manifest(ab_image.manifest))
    states = states_for(wlog, crash_points(wlog, layout, "full"), "full", seed=0)
    experiments = Classifier(update_recording, ab_target_spec, bootloader, layout).experiments(
        states
    )
    # A class whose members really differ on the disk (not just in their labels).
    pairs = [
        (e, e.states[0][1], e.states[i][1])
        for e in experiments
        for i in range(1, len(e.states))
        if extents(wlog, e.states[0][1]) != extents(wlog, e.states[i][1])
    ]
    assert pairs, "no class has two members with different disks; the classing proves nothing"
    experiment, first, second = pairs[0]

    # Booted as the sweep boots a class: the data checked for both when for one.
    data = checks_data(experiment, update_recording.data_synced_at)
    outcomes = [
        boot_state(
            update_recording, ab_target_spec, ab_image, bootloader, s, tmp_path / f"m{n}",
            check_data=data,
        )
        for n, s in enumerate((first, second))
    ]  # fmt: skip

    assert outcomes[0] == outcomes[1], (experiment.key, first.label, second.label, outcomes)
    assert len(experiments) < len(states)


def test_the_plan_covers_flushes_env_writes_and_both_models(update_recording, ab_image):
    wlog = WriteLog.open(update_recording.log)
    layout = DiskLayout.read(update_recording.base, names_from_manifest(ab_image.manifest))

    points = crash_points(wlog, layout, "full")
    states = states_for(wlog, points, "full", seed=0)

    flushes = {e.index + 1 for e in wlog.entries if e.is_flush}
    assert flushes <= {p.index for p in points}
    env_writes = [
        e for e in wlog.entries if e.is_write and ".env" in layout.describe_range(e.sector, 1)
    ]
    assert len(env_writes) >= 4  # Linux's install write, U-Boot's bootcount save, the commit, …
    assert {e.index for e in env_writes} <= {p.index for p in points}
    assert {s.model for _, s in states} == {"ordered", "volatile-cache"}
    assert len(states) >= 50
    assert any(s.torn is not None for _, s in states)
