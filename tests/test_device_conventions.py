"""A device whose conventions are not the reference image's: a YAML with other
values under `ab-harness.device` (and `env.default_slot`) is what the harness
uses to know a boot is ready, read the health verdict, learn the running slot,
and predict the default env's slot; with the defaults it would misread them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pexpect import TIMEOUT

from harness.bootloaders import BootEnv, bootloader_for
from harness.device.boot import BootWatcher
from harness.device.live import health_pattern, ready_pattern
from harness.device.observe import Observer
from harness.errors import DeviceError
from harness.targets.matrix import capabilities, unmet
from harness.targets.target import TargetSpec, default_targets_dir, load_target

OWN = {
    "type": "my-board",
    "ready_marker": r"my-board: up on (?P<slot>[AB])(?=[\r\n])",
    "health_pass": r"selftest: ok",
    "health_fail": r"selftest: broken",
    "running_slot": "mounts",
    "slot_file": None,
    "version_file": "/etc/release",
}
# Two boots as the device prints them: a failed self-test, then a good one.
TRANSCRIPT = (
    b"U-Boot 2023.01 (Jan 01 2023)\r\nStarting kernel ...\r\nselftest: broken\r\n"
    b"U-Boot 2023.01 (Jan 01 2023)\r\nStarting kernel ...\r\nselftest: ok\r\n"
    b"my-board: up on A\r\n"
)


def target(tmp_path: Path, device: dict[str, Any] | None, **env: Any) -> TargetSpec:
    data = yaml.safe_load((default_targets_dir() / "qemu-arm64-uboot-stock.yaml").read_text())
    if device is not None:
        data["ab-harness"]["device"] = device
    data["ab-harness"]["env"].update(env)
    data["ab-harness"]["slots"] = {"A": 3, "B": 4}
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_target(str(path))


class ScriptConsole:
    """labgrid's console `expect` over a fixed byte stream: the earliest match wins,
    as in pexpect; the end of the stream is a timeout."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def expect(
        self, patterns: list[re.Pattern[bytes]], timeout: float
    ) -> tuple[int, bytes, re.Match[bytes], bytes]:
        found = [(m.start(), i, m) for i, p in enumerate(patterns) if (m := p.search(self.data))]
        if not found:
            raise TIMEOUT("end of the transcript")
        _start, index, match = min(found, key=lambda f: (f[0], f[1]))
        before, self.data = self.data[: match.start()], self.data[match.end() :]
        return index, before, match, match.group(0)


def follow(spec: TargetSpec) -> list[tuple[str | None, str | None, bool]]:
    bootloader = bootloader_for(spec.bootloader, spec.env)
    watcher = BootWatcher(
        ScriptConsole(TRANSCRIPT),
        bootloader.markers,
        ready_pattern(spec),
        health=health_pattern(spec),
    )
    boots = watcher.wait_ready(per_boot_s=5, max_boots=3)
    return [(b.health, b.running_slot, b.ready) for b in boots]


def test_the_devices_ready_line_and_health_verdicts_are_read(tmp_path: Path) -> None:
    spec = target(tmp_path, OWN)

    assert follow(spec) == [("fail", None, False), ("pass", "A", True)]


def test_with_the_reference_conventions_the_same_console_never_becomes_ready(
    tmp_path: Path,
) -> None:
    spec = target(tmp_path, None)

    with pytest.raises(DeviceError, match="not ready"):
        follow(spec)


def test_a_device_without_a_health_check_offers_no_scenario_that_needs_one(
    tmp_path: Path,
) -> None:
    spec = target(tmp_path, {**OWN, "health_check": "none"})

    assert health_pattern(spec) is None
    assert "health-check" not in capabilities(spec)
    assert "lacks health-check" in (unmet(spec, ["health-check"]) or "")
    assert "health-check" in capabilities(target(tmp_path, OWN))


class CannedShell:
    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs
        self.asked: list[str] = []

    def exec(self, cmd: str, timeout_s: float = 30.0) -> tuple[int, str]:
        self.asked.append(cmd)
        return 0, self.outputs[cmd]

    def exec0(self, cmd: str, timeout_s: float = 30.0) -> str:
        return self.exec(cmd, timeout_s)[1]


def test_the_running_slot_comes_from_the_mount_table_and_the_devices_version_file(
    tmp_path: Path,
) -> None:
    spec = target(tmp_path, OWN)
    mounts = (
        'while read -r _i _p majmin _r mnt _x; do [ "$mnt" = / ] && '
        'echo "$majmin $(cat /sys/dev/block/$majmin/partition)"; done < /proc/self/mountinfo'
    )
    command = f"{mounts}; echo; echo -; cat /etc/release"
    shell = CannedShell({command: "179:4 4\n\n-\n7.1\n"})
    observer = Observer(spec, bootloader_for(spec.bootloader, spec.env), shell, None)

    seen = observer.booted_slot()

    assert (seen.slot, seen.cmdline_root, seen.etc_slot, seen.version) == (
        "B",
        "179:4",
        None,
        "7.1",
    )
    assert shell.asked == [command]


def test_the_default_env_boots_the_targets_default_slot(tmp_path: Path) -> None:
    no_copy = BootEnv({}, "host:disk", {"copy": "none"})
    first = target(tmp_path, OWN)
    second = target(tmp_path, OWN, default_slot="B")

    for spec, slot in ((first, "A"), (second, "B")):
        bootloader = bootloader_for(spec.bootloader, spec.env)
        expected, env = bootloader.predict(no_copy, spec.slots)
        assert bootloader.slot_started(no_copy, spec.slots) == slot
        assert env["mender_boot_part"] == str(spec.slots[slot])
        assert expected.slot == slot


def test_a_default_slot_that_is_no_slot_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"'ab-harness.env.default_slot' is 'C', not a slot"):
        target(tmp_path, OWN, default_slot="C")
