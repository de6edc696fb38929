"""The virtual board rig (harness.lab.rig): its power switch speaks labgrid's
`simplerest` to labgrid's own NetworkPowerDriver, its serial server carries
the board's console over RFC 2217 to labgrid's SerialDriver, a console
trigger cuts the board's power through the switch with the latency measured,
and no QEMU outlives the rig, however the process running it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labgrid import Target
from labgrid.driver import NetworkPowerDriver
from labgrid.resource import NetworkPowerPort

from harness.bootloaders import bootloader_for
from harness.device.live import live_target
from harness.faults.machine import process_gone
from harness.images import ensure_image
from harness.lab.rig.switch import Outlet, PowerSwitch
from harness.targets.target import load_target

REPO = Path(__file__).resolve().parent.parent


def test_labgrids_network_power_driver_switches_the_rigs_outlet() -> None:
    state = {"on": False, "calls": []}

    def switch_to(on: bool) -> str:
        state["on"] = on
        state["calls"].append(on)  # type: ignore[attr-defined]
        return "done"

    switch = PowerSwitch(
        Outlet(lambda: switch_to(True), lambda: switch_to(False), lambda: bool(state["on"]))
    )
    try:
        target = Target("rig-switch")
        NetworkPowerPort(target, None, model="simplerest", host=switch.url, index="0")
        driver = NetworkPowerDriver(target, None, delay=0.0)
        target.activate(driver)
        driver.on()
        assert driver.get() is True
        driver.off()
        assert driver.get() is False
        assert state["calls"] == [True, False]
        assert [(s.on, s.effect) for s in switch.log] == [(True, "on: done"), (False, "off: done")]
    finally:
        switch.close()


@pytest.mark.qemu
def test_a_console_trigger_cuts_the_boards_power_through_its_switch(tmp_path: Path) -> None:
    from harness.faults import FaultClock, Faults

    spec = load_target("virtual-board-uboot")
    image = ensure_image("arm64-uboot")
    with live_target(spec, image, tmp_path / "work", bootloader_for("uboot", spec.env)) as live:
        assert live.rig is not None and live.qemu is None  # a board: no QEMU driver
        live.strategy.transition("shell")
        pid = live.rig.machine.pid
        assert pid is not None
        faults = Faults(None, FaultClock(time.monotonic(), None, lambda what: None), live=live)
        with faults.power_cut_on_console(r"ab-init: slot=A ") as cut:
            live.strategy.reboot()  # ends with the power cut, not with a shell
        facts = cut.proof().facts
        assert facts["power_driver"] == "NetworkPowerDriver"
        assert facts["switch_effect"] == f"off: {pid}"  # the switch killed the board's QEMU
        assert process_gone(pid, 1.0)
        assert 0 < float(facts["delay_ms"]) < 1000, facts  # trigger → power gone, measured
        cut_boot = live.watcher.history[-1]
        assert (cut_boot.bootloader_slot, cut_boot.ready) == ("A", False)
        # The env it started from was read over the shell before the reboot, so
        # the oracle judged its decision (the host never sees a board's disk).
        assert cut_boot.env_before is not None
        assert cut_boot.env_before.source == "device:/uboot/uboot.env+/uboot/uboot-redund.env"
        assert cut_boot.env_before.detail["copy"] in ("uboot.env", "uboot-redund.env")
        # The board comes back from its switch alone.
        boots = live.strategy.power_on()
        assert boots[-1].ready and live.rig.machine.pid not in (None, pid)


RIG_SCRIPT = """
import sys, urllib.request
from pathlib import Path
from harness.images import ensure_image
from harness.lab.rig import virtual_rig
with virtual_rig(ensure_image("arm64-uboot"), Path(sys.argv[1])) as rig:
    urllib.request.urlopen(rig.power_url.format(index=0, value=1)).read()
    print(rig.machine.pid, flush=True)
    sys.stdin.readline()  # the test looks at QEMU, then lets the rig end
    raise SystemExit(3)
"""


@pytest.mark.qemu
@pytest.mark.parametrize("ending", ["raise", "SIGTERM", "SIGKILL"])
def test_no_qemu_outlives_the_rig(tmp_path: Path, ending: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", RIG_SCRIPT, str(tmp_path), ending],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stdin is not None
    qemu = int(proc.stdout.readline())
    assert not process_gone(qemu, 0.2)  # the board is on
    if ending == "raise":
        proc.stdin.write("end\n")
        proc.stdin.close()
    else:
        proc.send_signal(getattr(signal, ending))
    proc.wait(30)
    assert process_gone(qemu, 5.0), f"QEMU {qemu} outlived a rig ended by {ending}"
