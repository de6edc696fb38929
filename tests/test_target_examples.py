"""Every target file shipped in targets/ validates; the physical example
becomes a labgrid target with the same strategy the QEMU target uses."""

from pathlib import Path

import pytest
from labgrid import Environment

import harness.device.boot
import harness.machines.qemu  # registers ABQEMUDriver with labgrid
from harness.targets.target import BOOTLOADERS, default_targets_dir, load_target, materialize

TARGETS = sorted(default_targets_dir().glob("*.yaml"))


@pytest.mark.parametrize("path", TARGETS, ids=[p.stem for p in TARGETS])
def test_shipped_target_validates(path: Path) -> None:
    spec = load_target(str(path))
    assert set(spec.slots) == {"A", "B"}
    assert spec.bootloader in BOOTLOADERS


def test_physical_example_becomes_a_labgrid_target(tmp_path: Path) -> None:
    spec = load_target("example-board-uboot")
    materialized = materialize(spec, tmp_path, None)
    assert materialized.disk is None  # no host-side image: env is read on the device

    target = Environment(config_file=str(materialized.labgrid_config)).get_target("main")

    strategy = target.get_driver(harness.device.boot.ABBootStrategy, activate=False)
    assert strategy.status == harness.device.boot.Status.unknown
    assert target.get_driver("ShellDriver", activate=False).prompt == "ab-shell# "
    assert type(target.get_driver("PowerProtocol", activate=False)).__name__ == "NetworkPowerDriver"
