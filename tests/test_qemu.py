"""ABQEMUDriver pieces that need no guest: the version probe and the command line."""

import os
import platform
import shutil
from pathlib import Path

import pytest
from labgrid import Environment

import harness.device.boot  # noqa: F401  (registers ABBootStrategy with labgrid)
from harness.errors import EnvironmentMissing
from harness.images import ImageSet
from harness.machines.qemu import qemu_version
from harness.targets.target import load_target, materialize


def test_qemu_version_reads_the_installed_binary() -> None:
    binary = shutil.which("qemu-system-aarch64")
    if binary is None:
        pytest.skip("qemu-system-aarch64 not installed (Debian: qemu-system-arm)")
    major, minor, _ = qemu_version(binary)
    assert (major, minor) >= (7, 0)


def test_qemu_version_of_a_broken_binary_names_the_fix(tmp_path: Path) -> None:
    fake = tmp_path / "qemu-system-broken"
    fake.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(EnvironmentMissing) as err:
        qemu_version(str(fake))
    assert "exit 3" in str(err.value) and "cannot start" in str(err.value)
    assert "apt-get install" in str(err.value) and "\n" not in str(err.value)


def test_command_line_has_accel_env_flash_and_hotplug_ports(tmp_path: Path) -> None:
    files = {"bios": "u-boot.bin", "disk": "disk.img", "factory_env": "flash.img"}
    for name in files.values():
        (tmp_path / name).write_bytes(b"\0" * 512)
    image = ImageSet("fake", tmp_path, {"files": files, "payloads": {}})
    spec = load_target("qemu-arm64-uboot")
    config = materialize(spec, tmp_path / "work", image).labgrid_config
    target = Environment(config_file=str(config)).get_target("main")
    driver = target.get_driver("ABQEMUDriver", activate=False)

    argv = driver.get_qemu_base_args()

    accel = argv[argv.index("-accel") + 1]
    assert accel == driver.accel_choice.accel
    if platform.machine() != "aarch64":
        assert accel == "tcg"  # KVM cannot run an aarch64 guest on another architecture
    assert f"if=pflash,unit=1,format=raw,readonly=on,file={tmp_path / 'flash.img'}" in argv
    ports = [a for a in argv if a.startswith("pcie-root-port,")]
    assert [p.split(",")[1] for p in ports] == [f"id={port.bus}" for port in driver.payload_ports]
    assert len(ports) == 4
    # labgrid's own `-drive if=virtio` for the disk is replaced by the named graph.
    assert not any(a.startswith("if=virtio") for a in argv)
    disk = tmp_path / "work" / "disk.img"
    assert f"driver=file,node-name=ab-disk-file,filename={disk}," in " ".join(argv)
    assert "cache.no-flush=on" in " ".join(argv)  # disk_opts cache=unsafe
    assert "virtio-blk-pci,drive=ab-disk-throttle,id=ab-disk,write-cache=on" in argv
    assert "blklogwrites" not in " ".join(argv)


@pytest.mark.qemu
def test_write_log_records_the_guests_writes_from_power_on(ab_live, tmp_path: Path) -> None:
    log = tmp_path / "writes.log"
    ab_live.qemu.write_log = str(log)

    ab_live.strategy.transition("shell")
    shell = ab_live.target.get_driver("ShellDriver")
    shell.run_check("echo logged > /data/w && sync")
    ab_live.strategy.transition("off")

    head = log.read_bytes()[:32]
    magic, version, entries, sector = (
        int.from_bytes(head[i : i + 8], "little") for i in range(0, 32, 8)
    )
    assert (magic, version, sector) == (0x6A736677736872, 1, 512)
    assert entries > 0


def test_stale_qemu_temp_folders_of_dead_runs_are_removed(tmp_path: Path) -> None:
    import subprocess

    from harness.machines.qemu import OWNER_FILE, remove_stale_tempdirs

    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tmp_path / "labgrid-qemu-tmp-dead"
    live = tmp_path / "labgrid-qemu-tmp-live"
    foreign = tmp_path / "labgrid-qemu-tmp-foreign"  # not the harness's: no owner file
    for folder, owner in ((dead, gone.pid), (live, os.getpid()), (foreign, None)):
        folder.mkdir()
        (folder / "serialrw").write_text("")
        if owner is not None:
            (folder / OWNER_FILE).write_text(f"{owner}\n")

    assert remove_stale_tempdirs(tmp_path) == [dead]
    assert not dead.exists() and live.exists() and foreign.exists()


@pytest.mark.qemu
def test_a_pause_whose_answer_comes_late_is_still_resumed(
    booted, ab_live, shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loaded host can answer `stop` after its deadline; the stop still takes
    effect then, so the harness must resume the guest or it looks hung."""
    import signal
    import threading

    import harness.machines.qemu

    monkeypatch.setattr(harness.machines.qemu, "_PAUSE_TIMEOUT_S", 0.5)
    qemu = ab_live.qemu
    pid = qemu.pid
    os.kill(pid, signal.SIGSTOP)  # QEMU answers nothing until SIGCONT
    wake = threading.Timer(1.5, os.kill, (pid, signal.SIGCONT))
    wake.start()
    try:
        assert qemu.pause() is True  # no answer in time: maybe stopped, so resume
    finally:
        wake.cancel()
        os.kill(pid, signal.SIGCONT)
    assert qemu._monitor("query-status")["status"] == "paused"  # the late stop took effect
    qemu.resume()
    assert qemu._monitor("query-status")["status"] == "running"
    assert shell.exec("echo alive")[1].strip() == "alive"


@pytest.mark.qemu
def test_qmp_answers_while_the_guest_floods_a_console_nobody_reads(booted, ab_live, shell) -> None:
    """QEMU writes UART output one byte at a time and, with the socket full,
    retries holding its global lock: QMP then stalls until someone reads. The
    console pump reads it always, so a test busy elsewhere cannot deadlock."""
    import time

    shell.exec("(sleep 0.5; yes ab-flood-line | head -n 3000) > /dev/console 2>&1 &")
    time.sleep(3)  # the test reads nothing meanwhile: 39 KB of one-byte writes
    started = time.monotonic()
    assert ab_live.qemu._monitor("query-status", timeout_s=2.0)["status"] == "running"
    assert time.monotonic() - started < 2.0
    assert shell.exec("echo alive")[1].strip().splitlines()[-1] == "alive"


def test_sd_bus_attaches_the_disk_graph_as_an_sd_card(tmp_path: Path) -> None:
    """disk_bus: sd (the stock target): the same named block graph, under an
    sd-card on an SDHCI controller instead of a virtio disk; payloads keep
    their virtio hot-plug ports, and no env pflash is mapped."""
    files = {"bios": "u-boot.bin", "disk": "disk.img"}
    for name in files.values():
        (tmp_path / name).write_bytes(b"\0" * 512)
    image = ImageSet("fake", tmp_path, {"files": files, "payloads": {}})
    spec = load_target("qemu-arm64-uboot-stock")
    config = materialize(spec, tmp_path / "work", image).labgrid_config
    driver = (
        Environment(config_file=str(config))
        .get_target("main")
        .get_driver("ABQEMUDriver", activate=False)
    )

    argv = driver.get_qemu_base_args()

    assert driver.disk_bus == "sd"
    assert argv[argv.index("sdhci-pci,id=ab-sdhci") - 1] == "-device"
    assert argv[argv.index("sd-card,drive=ab-disk-throttle,id=ab-disk") - 1] == "-device"
    assert not any(a.startswith(("if=virtio", "virtio-blk-pci")) for a in argv)
    joined = " ".join(argv)
    disk = tmp_path / "work" / "disk.img"
    assert f"driver=file,node-name=ab-disk-file,filename={disk}," in joined
    for node in ("ab-disk-fmt", "ab-disk-split", "ab-disk-throttle"):
        assert f"node-name={node}" in joined
    assert "if=pflash" not in joined
    assert len([a for a in argv if a.startswith("pcie-root-port,")]) == 4


def test_sd_bus_keeps_the_write_log_filter(tmp_path: Path) -> None:
    from harness.machines.blockgraph import DiskGraph

    graph = DiskGraph.from_drive_options(
        tmp_path / "disk.img", "cache=unsafe", tmp_path / "log.bin", bus="sd"
    )
    args = graph.qemu_args()
    log_node = next(a for a in args if a.startswith("driver=blklogwrites"))
    assert "file=ab-disk-fmt" in log_node and f"log.filename={tmp_path / 'log.bin'}" in log_node
    assert "driver=blkdebug,node-name=ab-disk-split,image=ab-disk-log" in " ".join(args)
    assert args[-2:] == ["-device", "sd-card,drive=ab-disk-throttle,id=ab-disk"]


def test_an_unknown_disk_bus_names_the_choices(tmp_path: Path) -> None:
    from harness.errors import HarnessConfigError
    from harness.machines.blockgraph import DiskGraph

    with pytest.raises(HarnessConfigError, match="use disk_bus: virtio or sd"):
        DiskGraph.from_drive_options(tmp_path / "disk.img", None, bus="usb")


@pytest.mark.qemu
@pytest.mark.ab_target("qemu-arm64-uboot-stock")
def test_write_log_under_the_sd_card_records_u_boots_own_env_save(ab_live, tmp_path: Path) -> None:
    """The block graph under an sd-card: the first boot's canary save by U-Boot's
    MMC env driver (the redundant copy, at 0x800000) is in the write log."""
    from harness.crashsweep.writelog import WriteLog

    log = tmp_path / "writes.log"
    ab_live.qemu.write_log = str(log)

    ab_live.strategy.transition("shell")
    ab_live.strategy.transition("off")

    redundant = 0x800000 // 512
    writes = [e for e in WriteLog.open(log) if e.is_write]
    assert any(e.sector <= redundant < e.sector + e.nr_sectors for e in writes), [
        (e.sector, e.nr_sectors) for e in writes[:20]
    ]
    assert not any(e.sector <= 0x400000 // 512 < e.sector + e.nr_sectors for e in writes)
