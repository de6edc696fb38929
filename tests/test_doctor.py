"""`ab-harness doctor` and `--version`, run as a user runs them (a subprocess),
on this machine's real QEMU, KVM probe, firmware and image cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.doctor import harness_version
from harness.images import default_cache_dir
from harness.targets.target import default_targets_dir

TARGETS = default_targets_dir()
REPO = TARGETS.parent


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.skipif(
    not (Path("/usr/bin/qemu-system-aarch64").exists()), reason="QEMU not installed"
)
def test_reference_target_is_ready_with_one_verdict_per_line() -> None:
    proc = doctor("doctor", "--target", "qemu-arm64-uboot", "--cache", str(default_cache_dir()))
    lines = proc.stdout.splitlines()

    assert proc.returncode == 0, proc.stdout + proc.stderr
    topics = [m.group(2) for ln in lines if (m := re.match(r"  (ok|note|MISSING) +([\w ]+):", ln))]
    assert topics[:3] == ["python", "labgrid", "target"]
    assert {"qemu", "kvm", "firmware"} <= set(topics)
    assert re.search(r"^  ok +qemu: qemu-system-aarch64 \d+\.\d+\.\d+ ", proc.stdout, re.M)
    assert re.search(r"^  (ok|note) +kvm: (kvm|tcg): \S", proc.stdout, re.M)
    assert "ok       firmware: /usr/lib/u-boot/qemu_arm64/u-boot.bin" in proc.stdout
    assert lines[-1] == "ab-harness doctor: ready"


def test_an_empty_cache_is_a_note_not_a_failure(tmp_path: Path) -> None:
    proc = doctor("doctor", "--target", "qemu-arm64-uboot", "--cache", str(tmp_path))
    assert "note     image: 'arm64-uboot' not built yet" in proc.stdout
    assert not list(tmp_path.iterdir())  # doctor builds nothing


def test_missing_qemu_and_missing_board_parts_exit_1(tmp_path: Path) -> None:
    broken = tmp_path / "no-qemu.yaml"
    broken.write_text(
        (TARGETS / "qemu-arm64-uboot.yaml")
        .read_text()
        .replace("qemu-aarch64: qemu-system-aarch64", "qemu-aarch64: qemu-system-nope")
    )
    proc = doctor(
        "doctor", "--target", str(broken), "--target", str(TARGETS / "example-board-uboot.yaml")
    )

    assert proc.returncode == 1
    assert re.search(
        r"^  MISSING  qemu: .*'qemu-system-nope'.* — fix: apt-get install", proc.stdout, re.M
    )
    assert re.search(
        r"^  MISSING  console: .*/dev/ttyUSB0 does not exist — fix: ", proc.stdout, re.M
    )
    assert re.search(r"^  MISSING  power: .*power-switch.lab is not reachable", proc.stdout, re.M)
    assert proc.stdout.splitlines()[-1] == "ab-harness doctor: something needed is missing or wrong"


def test_unknown_target_is_one_missing_line() -> None:
    proc = doctor("doctor", "--target", "nope")
    assert proc.returncode == 1
    assert "  MISSING  target: unknown target 'nope' — fix: use one of: " in proc.stdout


def test_version() -> None:
    proc = doctor("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ab-harness {harness_version()}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", harness_version())
