"""Power lost in the middle of the env saves that matter — U-Boot saving the
trial boot's bootcount, the agent writing the commit — placed exactly from
the write log of a recorded update, a multi-sector write torn at a sector
boundary, with and without the unflushed cache: the device comes back on
v2 or v3 with nothing pending, its data intact and its client agreeing, every
time."""

import pytest

from harness.faults.crashstate import CrashState, TornWrite, crash_states, volatile_window
from harness.faults.disklayout import DiskLayout, names_from_manifest, regions_from_manifest
from harness.faults.sweep import boot_state
from harness.faults.writelog import WriteLog

pytestmark = [pytest.mark.qemu, pytest.mark.ab_needs("block-layer")]


def env_writes_in(recording, phase, layout, wlog, env_files):
    return [
        e
        for e in wlog.entries
        if e.is_write
        and recording.phase_of(e.index) == phase
        and any(
            f in layout.describe_range(e.sector, e.nr_sectors, wlog.sector_size) for f in env_files
        )
    ]


@pytest.mark.parametrize(
    ("phase", "which", "final_slots"),
    [
        # U-Boot's bootcount save of the first boot of B: torn, the other copy
        # (the install's) still says "try B".
        ("reboot into the update", 0, {"A", "B"}),
        # The agent's commit: torn or lost, the trial state rolls back to A;
        # kept, B stays. Either way nothing is pending and no data is lost.
        ("reboot into the update", -1, {"A", "B"}),
    ],
    ids=["uboot-bootcount-save", "agent-commit"],
)
def test_power_cut_inside_an_env_save(
    update_recording, ab_target_spec, ab_image, bootloader, evidence, tmp_path, phase, which,
    final_slots,
):  # fmt: skip
    wlog = WriteLog.open(update_recording.log)
    manifest = ab_image.manifest
    layout = DiskLayout.read(
        update_recording.base, names_from_manifest(manifest), regions_from_manifest(manifest)
    )
    save = env_writes_in(update_recording, phase, layout, wlog, ab_target_spec.env.copy_names)[
        which
    ]
    # The save torn half-way, every other write before it kept: built here, not
    # drawn from crash_states' seeded samples, whose torn victim is any of the
    # window's multi-sector writes (so it missed the save when data writes
    # shared its window).
    assert save.nr_sectors > 1, f"save #{save.index} is one sector: it cannot be torn"
    durable, volatile = volatile_window(wlog, save.index + 1)
    half = save.nr_sectors // 2
    torn = CrashState(
        save.index + 1,
        "volatile-cache",
        durable | {e.index for e in volatile if e.index != save.index},
        TornWrite(save.index, half),
        f"k={save.index + 1} torn #{save.index} {half}/{save.nr_sectors} sectors, others kept",
    )
    ordered = crash_states(wlog, save.index + 1, "ordered")
    lost = crash_states(wlog, save.index + 1, "volatile-cache")[:1]
    states = [torn, *ordered, *lost]

    for n, state in enumerate(states):
        outcome = boot_state(
            update_recording, ab_target_spec, ab_image, bootloader, state, tmp_path / f"s{n}"
        )
        evidence.event(
            f"{layout.describe_range(save.sector, save.nr_sectors)} #{save.index}, "
            f"{state.label}: {outcome.verdict}, {outcome.boots} boots, slot {outcome.final_slot}"
        )
        assert outcome.ok, (state.label, outcome)
        assert outcome.final_slot in final_slots
