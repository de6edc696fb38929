"""`ab-harness capture` and `ab-harness replay` on the command line: bad input is
one line naming the file or target and the fix; on QEMU a capture and its
replay run for real."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.cli import main
from harness.fieldcase import load
from harness.targets.target import default_targets_dir

BUNDLE = default_targets_dir().parent / "scenarios" / "bundles" / "lost-install-record"


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ab-harness: error: "), err
    return err


def test_replay_of_a_damaged_bundle_names_the_file_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "case"
    shutil.copytree(BUNDLE, copy)
    with (copy / "env" / "uboot-redund.env").open("r+b") as f:
        f.write(b"\xff")

    assert main(["replay", str(copy)]) == 1
    err = _one_line_error(capsys)
    assert "case/env/uboot-redund.env: its bytes are not the ones captured" in err
    assert "— fix: " in err


def test_replay_on_a_target_of_another_bootloader_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["replay", str(BUNDLE), "--target", "qemu-x86_64-grub"]) == 1
    assert "captured from a 'uboot' device" in _one_line_error(capsys)


def test_capture_of_a_qemu_target_needs_boot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["capture", "--target", "qemu-arm64-uboot", "--out", str(tmp_path / "b")]) == 1
    assert "--boot" in _one_line_error(capsys)


@pytest.mark.qemu
@pytest.mark.nightly
def test_capture_of_a_booted_target_replays_on_a_fresh_vm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "case"
    assert main(["capture", "--target", "qemu-arm64-uboot", "--boot", "--out", str(out)]) == 0
    assert f"bundle written to {out}" in capsys.readouterr().out

    assert main(["replay", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "slot A: v1 (version 1, by sha256)" in printed
    assert "boot 1: slot A, bootcount=1, upgrade_available=0 [nothing pending" in printed
    assert "oracle: kept the contract" in printed


BOARD_YAML = """\
imports: [harness.labgrid_glue]
targets:
  main:
    resources:
      NetworkSerialPort: {{host: 127.0.0.1, port: {port}, protocol: raw, speed: 115200}}
    drivers:
      SerialDriver: {{}}
      ManualPowerDriver: {{}}
      ShellDriver: {{prompt: 'ab-shell# ', login_prompt: ' login: ', username: root,
                    login_timeout: 90}}
      ABBootStrategy: {{}}
ab-harness:
  bootloader: uboot
  env: {{partition: 1, files: [uboot.env, uboot-redund.env], size: 0x4000}}
  slots: {{A: 2, B: 3}}
"""


@pytest.mark.qemu
@pytest.mark.nightly
def test_capture_over_the_console_of_a_running_board(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A board the harness did not start: a QEMU whose UART is a TCP port (as a
    serial server gives it), reached through the YAML's console alone."""
    import socket
    import subprocess

    from harness.images import ensure_image

    image = ensure_image("arm64-uboot")
    disk = tmp_path / "disk.img"
    shutil.copyfile(image.file("disk"), disk)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "board.yaml").write_text(BOARD_YAML.format(port=port))
    argv = [
        *("qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a57", "-m", "512M"),
        *("-accel", "tcg", "-bios", str(image.file("bios")), "-nic", "none"),
        *("-drive", f"if=pflash,unit=1,format=raw,readonly=on,file={image.file('factory_env')}"),
        *("-drive", f"if=none,id=d,format=raw,file={disk}", "-device", "virtio-blk-pci,drive=d"),
        *("-display", "none", "-monitor", "none"),
        *("-serial", f"tcp:127.0.0.1:{port},server=on,wait=off"),
    ]
    qemu = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        out = tmp_path / "case"
        code = main(["capture", "--target", str(tmp_path / "board.yaml"), "--out", str(out)])
    finally:
        qemu.kill()
        qemu.wait(timeout=30)

    assert code == 0, capsys.readouterr().err
    bundle = load(out)
    assert (bundle.via, bundle.running_slot, bundle.slots["A"].version) == ("console", "A", "1")
    assert bundle.env_device["mender_boot_part"] == "2"
