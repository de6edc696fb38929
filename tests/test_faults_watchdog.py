"""The watchdog fault proves a watchdog reset from QEMU's own WATCHDOG event,
so a boot that ends any other way never counts as one."""

from pathlib import Path

import pytest

from harness.errors import HarnessConfigError
from harness.faults import FaultClock, Machine
from harness.faults.watchdog import WatchdogReset
from harness.images.diskimage import Partition

pytestmark = pytest.mark.qemu


def test_a_reboot_the_guest_asked_for_is_not_a_watchdog_reset(booted, push, faults, payloads):
    assert push.install(payloads["v2"]).ok
    with faults.watchdog_reset() as watchdog:
        boots = booted.reboot(max_boots=1)

    assert boots[-1].reached_shell and boots[-1].running_slot == "B"
    proof = watchdog.proof()
    assert not proof.fired and proof.facts["watchdog_events"] == 0, proof
    assert "never expired" in proof.why
    faults.discard(watchdog)  # asserted above; no second failure at teardown


class _NoWatchdog:
    pid = 1234
    fault_qmp_socket = Path("/nonexistent")
    disk_graph = None
    watchdog = None

    def kill_process(self) -> None:
        raise AssertionError("not called")


def test_a_target_without_a_watchdog_is_one_line_naming_the_yaml_key():
    machine = Machine(_NoWatchdog(), lambda: None, None, lambda _w: Partition(3, 0, 0, "83"))
    fault = WatchdogReset(machine, FaultClock(0.0), machine.qemu.watchdog)
    with pytest.raises(HarnessConfigError, match="needs a watchdog device") as err:
        fault.arm()
    assert "watchdog: i6300esb" in str(err.value)
