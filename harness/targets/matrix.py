"""The target matrix: which targets a run covers, what each can do, and the
targets x scenarios table a matrix run ends with.

`--ab-target` takes a name, a YAML path, a comma list of either, or `all`
(every target in targets/ that has a reference image, i.e. the QEMU ones:
a board needs its hardware, so it is named, never implied). A scenario that
needs something a target cannot do (`@pytest.mark.ab_needs("watchdog")`) is
skipped for that target at collection, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.bootloaders import bootloader_for
from harness.errors import HarnessConfigError
from harness.targets.target import TargetSpec, default_targets_dir, load_target

# What a capability means, for the skip reason a person reads.
CAPABILITIES = {
    "qemu": "a QEMU machine (block layer, QMP, hot-plug)",
    "health-check": "an image that checks its health at boot and prints the verdict "
    "(`ab-harness.device.health_check: boot`)",
    "block-layer": "needs QEMU block layer: the device's disk read and written from the "
    "host, between and during boots",
    "hotplug": "a machine a payload disk can be hot-plugged into (QEMU's QMP)",
    "network": "a network the device fetches payloads over (ABQEMUDriver `nic:`, or a "
    "board whose `ab-harness.delivery` is network)",
    "storage-medium": "a USB stick or SD card labgrid writes and the board reads "
    "(`ab-harness.delivery: usbstorage`, USBStorageDriver)",
    "watchdog": "a hardware watchdog that resets the board (ABQEMUDriver `watchdog:`)",
    "bootlimit-n": "a bootloader whose bootlimit can be set to any value in its env",
    "env-default-saved": "a bootloader that, with no valid env copy, boots its default env "
    "and saves it",
    "env-redundant": "two env copies, so a damaged one leaves the other to boot from",
}


def target_names(value: str, targets_dir: Path | None = None) -> list[str]:
    """The targets named by an --ab-target value, in the order given, each once."""
    names: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            raise HarnessConfigError(
                f"--ab-target {value!r} has an empty entry", "e.g. --ab-target a,b or all"
            )
        found = all_qemu_targets(targets_dir) if part == "all" else [part]
        names += [n for n in found if n not in names]
    return names


def all_qemu_targets(targets_dir: Path | None = None) -> list[str]:
    """Every target in targets/ that runs on a reference image (the QEMU ones)."""
    root = targets_dir or default_targets_dir()
    names = [
        p.stem
        for p in sorted(root.glob("*.yaml"))
        if load_target(str(p)).image is not None and "qemu" in capabilities(load_target(str(p)))
    ]
    if not names:
        raise HarnessConfigError(f"no QEMU targets in {root}", "add a target YAML with an image")
    return names


def capabilities(spec: TargetSpec) -> frozenset[str]:
    """What the target can do: from its machine (the labgrid drivers) and its bootloader."""
    found: set[str] = set(getattr(bootloader_for(spec.bootloader, spec.env), "capabilities", ()))
    if spec.device.health_check != "none":
        found.add("health-check")
    drivers = spec.labgrid.get("targets", {}).get("main", {}).get("drivers", {})
    if isinstance(drivers, list):
        drivers = {k: v for d in drivers for k, v in d.items()}
    qemu = drivers.get("ABQEMUDriver")
    if qemu is not None:
        found |= {"qemu", "hotplug", "block-layer"}
        if isinstance(qemu, dict) and qemu.get("watchdog"):
            found.add("watchdog")
        nic = str(qemu.get("nic") or "") if isinstance(qemu, dict) else ""
        if nic and not nic.startswith("none"):
            found.add("network")
    elif spec.delivery in ("network", "ssh"):
        found.add("network")  # a board: its YAML says the device is on the lab's network
    if spec.delivery == "usbstorage":
        found.add("storage-medium")  # its YAML names the medium's labgrid drivers
    return frozenset(found)


def unmet(spec: TargetSpec, needs: Sequence[str]) -> str | None:
    """Why the target cannot run a scenario that needs `needs`, or None if it can."""
    missing = [n for n in needs if n not in capabilities(spec)]
    if not missing:
        return None
    said = "; ".join(f"{n} ({CAPABILITIES.get(n, 'declared by the scenario')})" for n in missing)
    return f"target {spec.name} lacks {said}"


@dataclass(frozen=True)
class Cell:
    """One scenario on one target."""

    scenario: str
    target: str
    outcome: str


def matrix_table(cells: Sequence[Cell]) -> list[str]:
    """Scenarios down, targets across, outcome in each cell; [] for one target."""
    targets = sorted({c.target for c in cells if c.target})
    if len(targets) < 2:
        return []
    scenarios = sorted({c.scenario for c in cells})
    grid = {(c.scenario, c.target): c.outcome for c in cells}
    width = max(len("scenario"), *(len(s) for s in scenarios))
    cols = [max(len(t), 7) for t in targets]
    lines = [
        f"{'scenario':<{width}}  "
        + "  ".join(t.ljust(w) for t, w in zip(targets, cols, strict=True))
    ]
    for scenario in scenarios:
        row = [grid.get((scenario, t), "-").ljust(w) for t, w in zip(targets, cols, strict=True)]
        lines.append(f"{scenario:<{width}}  " + "  ".join(row).rstrip())
    for target in targets:
        mine = [c for c in cells if c.target == target]
        passed = sum(c.outcome == "passed" for c in mine)
        skipped = sum(c.outcome == "skipped" for c in mine)
        lines.append(f"{target}: {passed}/{len(mine)} passed, {skipped} skipped")
    return lines


def scenario_of(nodeid: str, target: str) -> str:
    """A test's name with the target taken out of its id: the matrix row."""
    name = nodeid.rsplit("::", maxsplit=1)[-1]
    if "[" not in name:
        return name
    base, params = name[:-1].split("[", 1)
    rest = params[len(target) :].lstrip("-") if params.startswith(target) else params
    return f"{base}[{rest}]" if rest else base
