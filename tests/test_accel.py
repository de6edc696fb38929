"""Accelerator choice: KVM only when a real KVM boot keeps running."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import EnvironmentMissing, HarnessConfigError
from harness.machines import accel
from harness.machines.accel import AccelChoice, choose_accel, qemu_accel_args

HOST_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine(), platform.machine())
OTHER_ARCH = "aarch64" if HOST_ARCH == "x86_64" else "x86_64"

needs_qemu_x86 = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 not installed"
)


@pytest.fixture(autouse=True)
def fresh_probe_cache() -> Iterator[None]:
    accel._probe_kvm.cache_clear()
    yield
    accel._probe_kvm.cache_clear()


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the probe create its temp dir under tmp_path, so its processes are findable."""
    probe_tmp = tmp_path / "probe-tmp"
    probe_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(probe_tmp))
    return probe_tmp


def fake_qemu(tmp_path: Path, body: str) -> Path:
    """An executable standing in for QEMU; ``body`` is Python, ``sys.argv`` as QEMU's."""
    script = tmp_path / "qemu-system-fake"
    script.write_text(f"#!{sys.executable}\nimport sys, time, pathlib\n{body}\n")
    script.chmod(0o755)
    return script


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        state = stat.rsplit(")", 1)[-1].split()[0]
        if text.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_arch_mismatch_is_tcg_without_running_qemu(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    qemu = fake_qemu(tmp_path, f"pathlib.Path({str(marker)!r}).touch()")

    choice = choose_accel(str(qemu), OTHER_ARCH)

    assert choice == AccelChoice("tcg", f"guest arch {OTHER_ARCH} differs from host {HOST_ARCH}")
    assert not marker.exists(), "the probe ran QEMU for a foreign-arch guest"


def test_arch_aliases_are_the_same_arch(tmp_path: Path) -> None:
    debian_name = {"x86_64": "amd64", "aarch64": "arm64"}.get(HOST_ARCH, HOST_ARCH)
    choice = choose_accel(str(fake_qemu(tmp_path, "")), debian_name, requested="tcg")
    assert choice.accel == "tcg"
    mismatch = choose_accel(str(fake_qemu(tmp_path, "")), debian_name)
    assert "differs" not in mismatch.reason


@pytest.mark.parametrize("spelling", ["arm", "armhf", "armv7l"])
def test_32bit_arm_guest_is_tcg_on_this_host_without_running_qemu(
    tmp_path: Path, spelling: str
) -> None:
    marker = tmp_path / "ran"
    qemu = fake_qemu(tmp_path, f"pathlib.Path({str(marker)!r}).touch()")

    choice = choose_accel(str(qemu), spelling)

    assert choice == AccelChoice("tcg", f"guest arch arm differs from host {HOST_ARCH}")
    assert not marker.exists(), "the probe ran QEMU for a 32-bit ARM guest"
    with pytest.raises(HarnessConfigError, match="differs from host"):
        choose_accel(str(qemu), spelling, requested="kvm")


def test_forced_tcg(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    qemu = fake_qemu(tmp_path, f"pathlib.Path({str(marker)!r}).touch()")

    assert choose_accel(str(qemu), HOST_ARCH, requested="tcg") == AccelChoice(
        "tcg", "tcg requested (--ab-accel, or the target's accel:)"
    )
    assert not marker.exists()


def test_kvm_forced_for_foreign_arch_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(HarnessConfigError, match="differs from host"):
        choose_accel(str(fake_qemu(tmp_path, "")), OTHER_ARCH, requested="kvm")


def test_unknown_request_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(HarnessConfigError, match="auto, kvm or tcg"):
        choose_accel(str(fake_qemu(tmp_path, "")), HOST_ARCH, requested="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("binary", "package"),
    [("qemu-system-x86_64", "qemu-system-x86"), ("qemu-system-aarch64", "qemu-system-arm")],
)
def test_missing_binary_names_the_package(tmp_path: Path, binary: str, package: str) -> None:
    with pytest.raises(EnvironmentMissing) as caught:
        choose_accel(str(tmp_path / binary), "x86_64")
    assert f"apt-get install --no-install-recommends {package}" in str(caught.value)


@needs_qemu_x86
@pytest.mark.skipif(HOST_ARCH != "x86_64", reason="the probe runs an x86_64 firmware loop")
def test_the_probe_decides_fast_and_leaves_nothing(private_tmp: Path) -> None:
    # Whether KVM works is the machine's business (FINDINGS.md measured it
    # broken; on 2026-11-28 this machine's probe found it working): the probe
    # must decide either way within seconds, say why when it falls back, and
    # leave no process or file behind.
    started = time.monotonic()
    choice = choose_accel("qemu-system-x86_64", "x86_64")
    elapsed = time.monotonic() - started

    assert choice.accel in ("kvm", "tcg")
    if choice.accel == "tcg":
        assert choice.reason.startswith("kvm unusable: "), choice.reason
    assert elapsed < 5.0
    assert processes_mentioning(str(private_tmp)) == []
    assert list(private_tmp.iterdir()) == [], "the probe left its firmware behind"


@needs_qemu_x86
@pytest.mark.skipif(HOST_ARCH != "x86_64", reason="the probe runs an x86_64 firmware loop")
def test_required_kvm_is_given_or_refused_with_the_reason() -> None:
    auto = choose_accel("qemu-system-x86_64", "x86_64")
    if auto.accel == "kvm":
        assert choose_accel("qemu-system-x86_64", "x86_64", requested="kvm").accel == "kvm"
        return
    with pytest.raises(EnvironmentMissing) as caught:
        choose_accel("qemu-system-x86_64", "x86_64", requested="kvm")
    assert "KVM requested, but kvm unusable: " in str(caught.value)


@pytest.fixture
def usable_kvm_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the probe at a readable, writable stand-in for /dev/kvm."""
    node = tmp_path / "kvm"
    node.touch()
    monkeypatch.setattr(accel, "KVM_DEVICE", node)


def test_surviving_probe_means_kvm_and_is_killed(
    tmp_path: Path, private_tmp: Path, usable_kvm_node: None
) -> None:
    qemu = fake_qemu(tmp_path, "time.sleep(60)")

    started = time.monotonic()
    choice = choose_accel(str(qemu), HOST_ARCH)
    elapsed = time.monotonic() - started

    assert choice == AccelChoice("kvm", "kvm works")
    assert accel.PROBE_WINDOW_S <= elapsed < accel.PROBE_WINDOW_S + 2.0
    assert processes_mentioning(str(private_tmp)) == [], "the probe left QEMU running"


def test_probe_is_given_a_spinning_firmware(tmp_path: Path, usable_kvm_node: None) -> None:
    copy = tmp_path / "firmware-seen"
    qemu = fake_qemu(
        tmp_path,
        "args = sys.argv[1:]\n"
        f"pathlib.Path({str(copy)!r}).write_bytes("
        "pathlib.Path(args[args.index('-bios') + 1]).read_bytes())\n"
        "assert args[:2] == ['-accel', 'kvm']\n"
        "time.sleep(60)",
    )

    assert choose_accel(str(qemu), HOST_ARCH).accel == "kvm"

    firmware = copy.read_bytes()
    if HOST_ARCH == "x86_64":
        assert len(firmware) == 64 * 1024
        assert firmware[-16:-14] == b"\xeb\xfe"  # jmp $ at the reset vector
    else:
        assert firmware[:4] == (0x14000000).to_bytes(4, "little")  # b .


def test_kvm_error_while_running_means_tcg(tmp_path: Path, usable_kvm_node: None) -> None:
    qemu = fake_qemu(
        tmp_path,
        "print('qemu: warning: host lacks CPUID bit', file=sys.stderr)\n"
        "print('KVM internal error. Suberror: 1', file=sys.stderr, flush=True)\n"
        "time.sleep(60)",
    )

    assert choose_accel(str(qemu), HOST_ARCH) == AccelChoice(
        "tcg", "kvm unusable: KVM internal error. Suberror: 1"
    )


def test_silent_exit_reports_the_exit_status(tmp_path: Path, usable_kvm_node: None) -> None:
    qemu = fake_qemu(tmp_path, "sys.exit(3)")

    assert choose_accel(str(qemu), HOST_ARCH) == AccelChoice(
        "tcg", "kvm unusable: qemu-system-fake exited with 3"
    )


def test_missing_kvm_node_is_tcg_without_running_qemu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accel, "KVM_DEVICE", tmp_path / "no-kvm")
    marker = tmp_path / "ran"
    qemu = fake_qemu(tmp_path, f"pathlib.Path({str(marker)!r}).touch()")

    choice = choose_accel(str(qemu), HOST_ARCH)

    assert choice.accel == "tcg"
    assert "does not exist" in choice.reason
    assert not marker.exists()


def test_probe_runs_once_per_binary_and_arch(tmp_path: Path, usable_kvm_node: None) -> None:
    runs = tmp_path / "runs"
    qemu = fake_qemu(tmp_path, f"open({str(runs)!r}, 'a').write('x')\nsys.exit(1)")

    first = choose_accel(str(qemu), HOST_ARCH)
    second = choose_accel(str(qemu), HOST_ARCH)

    assert first == second
    assert runs.read_text() == "x"


def test_accel_args() -> None:
    assert qemu_accel_args(AccelChoice("kvm", "kvm works")) == ["-accel", "kvm"]
    assert qemu_accel_args(
        AccelChoice("tcg", "tcg requested (--ab-accel, or the target's accel:)")
    ) == ["-accel", "tcg"]
