"""Power lost in the middle of the env saves that matter — U-Boot saving the
trial boot's bootcount, the client writing the commit — placed exactly from
the write log of a recorded update, the save torn at a sector boundary, with
and without the unflushed cache: the device comes back on v2 or v3 with
nothing pending, its data intact and its client agreeing, every time."""

import pytest

from harness.crashsweep.crashstate import CrashState, TornWrite, crash_states, volatile_window
from harness.crashsweep.disklayout import DiskLayout, names_from_manifest, regions_from_manifest
from harness.crashsweep.sweep import boot_state
from harness.crashsweep.writelog import WriteLog

pytestmark = [pytest.mark.qemu, pytest.mark.ab_needs("block-layer")]


def env_saves_in(recording, phase, layout, wlog, env_copies):
    """Each env save of the phase as its writes, in order: one multi-sector write
    (a virtio disk), or a run of writes to consecutive sectors of one copy (an SD
    card, where every sector is a write of its own)."""
    saves = []
    for e in wlog.entries:
        if not e.is_write or recording.phase_of(e.index) != phase:
            continue
        where = layout.describe_range(e.sector, e.nr_sectors, wlog.sector_size)
        copy = next((c for c in env_copies if c in where), None)
        if copy is None:
            continue
        previous_copy, writes = saves[-1] if saves else (None, [])
        if previous_copy == copy and e.sector == writes[-1].sector + writes[-1].nr_sectors:
            writes.append(e)
        else:
            saves.append((copy, [e]))
    return [writes for _, writes in saves]


def torn_inside(save, wlog):
    """The save cut half-way, every other write before it kept."""
    if len(save) == 1:
        write = save[0]
        assert write.nr_sectors > 1, f"save #{write.index} is one sector: it cannot be torn"
        durable, volatile = volatile_window(wlog, write.index + 1)
        half = write.nr_sectors // 2
        return CrashState(
            write.index + 1,
            "volatile-cache",
            durable | {e.index for e in volatile if e.index != write.index},
            TornWrite(write.index, half),
            f"k={write.index + 1} torn #{write.index} {half}/{write.nr_sectors} sectors, "
            "others kept",
        )
    # Writes of one sector each: the cut falls after the first half of them.
    middle = save[len(save) // 2 - 1]
    state = crash_states(wlog, middle.index + 1, "ordered")[0]
    kept = sum(e.nr_sectors for e in save if e.index <= middle.index)
    total = sum(e.nr_sectors for e in save)
    return CrashState(
        state.index, state.model, state.kept, state.torn, f"{state.label}, save torn {kept}/{total}"
    )


@pytest.mark.parametrize(
    ("phase", "which", "final_slots"),
    [
        # U-Boot's bootcount save of the first boot of B: torn, the other copy
        # (the install's) still says "try B".
        ("reboot into the update", 0, {"A", "B"}),
        # The agent's commit: torn or lost, the trial state rolls back to A;
        # kept, B stays. Either way nothing is pending and no data is lost.
        pytest.param(
            "reboot into the update",
            -1,
            {"A", "B"},
            # Shown by the torn commit on U-Boot; GRUB's cuts here fall elsewhere.
            marks=pytest.mark.ab_finding("mender-commit-env-before-database", strict=False),
        ),
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
    save = env_saves_in(update_recording, phase, layout, wlog, ab_target_spec.env.copy_names)[which]
    # The save torn half-way: built here, not drawn from crash_states' seeded
    # samples, whose torn victim is any of the window's multi-sector writes (so
    # it missed the save when data writes shared its window).
    torn = torn_inside(save, wlog)
    end = save[-1].index + 1
    ordered = crash_states(wlog, end, "ordered")
    lost = crash_states(wlog, end, "volatile-cache")[:1]
    states = [torn, *ordered, *lost]
    first = save[0]
    sectors = sum(e.nr_sectors for e in save)

    for n, state in enumerate(states):
        outcome = boot_state(
            update_recording, ab_target_spec, ab_image, bootloader, state, tmp_path / f"s{n}"
        )
        evidence.event(
            f"{layout.describe_range(first.sector, sectors)} #{first.index}, "
            f"{state.label}: {outcome.verdict}, {outcome.boots} boots, slot {outcome.final_slot}"
        )
        assert outcome.ok, f"{state.label}: {outcome.verdict} ({outcome})"
        assert outcome.final_slot in final_slots
