"""Power lost at any write of an update (v3 over a committed v2) — lost write
cache included — never bricks the device, never leaves it between versions,
never loses data that was synced before the update, and never leaves the
update client disagreeing with the device (run with --ab-sweep quick|full)."""

import pytest

pytestmark = [pytest.mark.qemu, pytest.mark.ab_needs("block-layer")]


def test_power_loss_at_any_write_of_an_update_is_survived(crash_sweep):
    report = crash_sweep.report

    assert report.states >= 10, "\n".join(crash_sweep.table)
    assert {state.model for _, state, _, _ in report.rows} == {"ordered", "volatile-cache"}
    phases = {crash_sweep.recording.phase_of(point.index) for point, *_ in report.rows}
    assert {"install", "reboot into the update", "after commit"} <= phases, phases
    assert any(outcome.data_checked for *_, outcome in report.rows)
    details = [f"{state.label}: {outcome.detail}" for _, state, _, outcome in report.failures]
    assert not report.failures, "\n".join([*crash_sweep.table, *details])
