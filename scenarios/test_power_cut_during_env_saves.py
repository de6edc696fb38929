"""Power lost in the middle of the env saves that matter — U-Boot saving the
trial boot's bootcount, the agent writing the commit — placed exactly from
the write log of a recorded update, a multi-sector write torn at a sector
boundary, with and without the unflushed cache: the device comes back on
v1 or v2 with nothing pending and its data intact, every time."""

import pytest

from harness.faults.crashstate import crash_states
from harness.faults.disklayout import DiskLayout, names_from_manifest
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
    layout = DiskLayout.read(update_recording.base, names_from_manifest(ab_image.manifest))
    save = env_writes_in(update_recording, phase, layout, wlog, ab_target_spec.env.files)[which]
    torn = [
        s
        for s in crash_states(wlog, save.index + 1, "volatile-cache", seed=1, samples=2)
        if s.torn is not None and s.torn.index == save.index
    ]
    ordered = crash_states(wlog, save.index + 1, "ordered")
    lost = crash_states(wlog, save.index + 1, "volatile-cache")[:1]
    states = [*torn[:1], *ordered, *lost]
    assert torn, "no torn variant of the save: the fault would not be placed"

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
