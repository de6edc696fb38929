"""Power lost at any write of an update (v3 over a committed v2) — lost write
cache included — never bricks the device, never leaves it between versions,
never loses data that was synced before the update, and never leaves the
update client disagreeing with the device (run with --ab-sweep quick|full)."""

import pytest

from harness.crashsweep.sweep import crash_models
from harness.judge.findings import FINDINGS, Stack, explaining

pytestmark = [pytest.mark.qemu, pytest.mark.ab_needs("block-layer")]
# Crash states the stack under test is known to get wrong (docs/findings.md):
# the sweep reports them as those findings; any other broken state fails it.
KNOWN = [
    FINDINGS["mender-commit-env-before-database"],
    FINDINGS["grub-editenv-rewrite-leaves-env-unreadable"],
    FINDINGS["swupdate-cut-install-stays-in-progress"],
]


@pytest.mark.ab_finding(*(f.id for f in KNOWN), strict=False)
def test_power_loss_at_any_write_of_an_update_is_survived(
    crash_sweep, ab_target_spec, update_client
):
    report = crash_sweep.report

    assert report.states >= 10, "\n".join(crash_sweep.table)
    # Every crash model the medium admits (an SD card takes no flush: ordered only).
    assert {state.model for _, state, _, _ in report.rows} == set(crash_models(ab_target_spec))
    phases = {crash_sweep.recording.phase_of(point.index) for point, *_ in report.rows}
    assert {"install", "reboot into the update", "after commit"} <= phases, phases
    assert any(outcome.data_checked for *_, outcome in report.rows)
    stack = Stack(ab_target_spec.design, update_client.name, ab_target_spec.bootloader)
    details = [f"{state.label}: {outcome.detail}" for _, state, _, outcome in report.failures]
    unknown = [d for d in details if not explaining(d, KNOWN, stack)]
    assert not unknown, "\n".join([*crash_sweep.table, *unknown])
    assert not details, "\n".join([f"{len(details)} states show a known finding:", *details])
