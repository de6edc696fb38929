"""labgrid's QEMUDriver, made safe to leave running in a test suite.

What it adds to labgrid's driver, and why:
- the accelerator is chosen by trying KVM, not by seeing /dev/kvm;
- a read-only factory env in pflash bank 1 (U-Boot's env store) and
  PCIe root ports so a payload disk can be hot-plugged like a USB key;
- the boot disk as a `-blockdev` graph with named nodes (harness.machines.blockgraph),
  so faults can throttle it, fail its writes or log them;
- QMP sockets of the harness's own: one for hot-plug, one for faults;
- every wait has a deadline, and QEMU dies with the test process
  (PR_SET_PDEATHSIG, own session so Ctrl-C reaches pytest, which stops it);
- a QEMU that exits while the test reads its console is reported with
  its exit code and stderr, instead of as a silent end of file.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import attr
from labgrid.driver.qemudriver import QEMUDriver
from labgrid.factory import target_factory
from labgrid.util.qmp import QMPMonitor

from harness.errors import DeviceError, EnvironmentMissing, HarnessConfigError
from harness.machines import hotplug
from harness.machines.accel import AccelChoice, choose_accel, qemu_accel_args
from harness.machines.blockgraph import DISK_BUSES, DiskGraph
from harness.machines.console_pump import ConsolePump
from harness.machines.qmp import QmpChannel, QmpCommandError
from harness.machines.tempdirs import OWNER_FILE, drop_tempdir, remove_stale_tempdirs

__all__ = ["OWNER_FILE", "ABQEMUDriver", "die_with_parent", "remove_stale_tempdirs"]

log = logging.getLogger(__name__)

# `stop` for a consistent disk read: generous, a loaded host answers late.
_PAUSE_TIMEOUT_S = 5.0
# The most one console read hands out (labgrid's own read takes a page).
_READ_CHUNK = 4096
# How long resume() keeps asking QEMU to let a paused guest run.
_RESUME_DEADLINE_S = 20.0

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Have the kernel kill this process when the one that started it dies
    (before exec in a QEMU child; as the initializer of a worker process)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@functools.cache
def qemu_version(qemu_bin: str) -> tuple[int, int, int]:
    """QEMU's (major, minor, micro), asked once per binary and process.

    labgrid runs `qemu -version` on every activation; a binary does not
    change during a run, and the saved fork counts against boot time.
    """
    proc = subprocess.run([qemu_bin, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", proc.stdout)
    if proc.returncode != 0 or match is None:
        raise EnvironmentMissing(
            f"'{qemu_bin} -version' failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}",
            "reinstall QEMU (apt-get install --reinstall qemu-system-arm)",
        )
    major, minor, micro = (int(g) for g in match.groups())
    return major, minor, micro


@target_factory.reg_driver
@attr.s(eq=False)
class ABQEMUDriver(QEMUDriver):  # type: ignore[misc]
    """QEMUDriver with accel probing, env flash, hot-plug ports and hard deadlines.

    Extra YAML args: env_flash (images key, mapped read-only as pflash unit 1),
    accel (auto|kvm|tcg), guest_arch, hotplug_ports, hotplug_bus (pcie|scsi, see
    harness.machines.hotplug), start_timeout, stop_timeout,
    write_log (a file that records every write and flush to the disk from
    power-on, in dm-log-writes format; created empty if missing), watchdog
    (a QEMU watchdog device model, e.g. i6300esb, whose expiry resets the
    board as a hardware watchdog does), disk_bus (virtio, or sd: the boot
    disk as an SD card on an SDHCI controller, as a Mender board boots from
    one; payloads are still hot-plugged as virtio disks), firmware_code and firmware_vars
    (images keys of a UEFI firmware's code, mapped read-only as pflash unit
    0, and its variable store, pflash unit 1, written to a copy per test).
    """

    # Set by labgrid's driver; declared so the type checker knows them.
    status: int
    _child: subprocess.Popen[bytes] | None
    _clientsocket: Any

    env_flash: str | None = attr.ib(
        default=None, validator=attr.validators.optional(attr.validators.instance_of(str))
    )
    accel: str = attr.ib(default="auto", validator=attr.validators.in_(["auto", "kvm", "tcg"]))
    guest_arch: str = attr.ib(default="aarch64", validator=attr.validators.instance_of(str))
    hotplug_ports: int = attr.ib(default=1, validator=attr.validators.instance_of(int))
    hotplug_bus: str = attr.ib(default="pcie", validator=attr.validators.in_(hotplug.HOTPLUG_BUSES))
    start_timeout: float = attr.ib(default=15.0, converter=float)
    stop_timeout: float = attr.ib(default=10.0, converter=float)
    hold_resets: bool = attr.ib(default=True, validator=attr.validators.instance_of(bool))
    write_log: str | None = attr.ib(
        default=None, validator=attr.validators.optional(attr.validators.instance_of(str))
    )
    watchdog: str | None = attr.ib(
        default=None, validator=attr.validators.optional(attr.validators.instance_of(str))
    )
    firmware_code: str | None = attr.ib(
        default=None, validator=attr.validators.optional(attr.validators.instance_of(str))
    )
    disk_bus: str = attr.ib(default="virtio", validator=attr.validators.in_(DISK_BUSES))
    firmware_vars: str | None = attr.ib(
        default=None, validator=attr.validators.optional(attr.validators.instance_of(str))
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.accel_choice: AccelChoice | None = None
        self.qmp_socket: Path | None = None
        self._ctl_socket: Path | None = None
        self._ctl: QmpChannel | None = None
        self.fault_qmp_socket: Path | None = None
        self.disk_graph: DiskGraph | None = None
        self._stderr_path: Path | None = None
        self._pump: ConsolePump | None = None

    def get_qemu_version(self, qemu_bin: str) -> tuple[int, int, int]:
        return qemu_version(qemu_bin)

    def get_qemu_base_args(self) -> list[str]:
        cmd: list[str] = super().get_qemu_base_args()
        if self.accel_choice is None:
            self.accel_choice = choose_accel(cmd[0], self.guest_arch, self.accel)  # type: ignore[arg-type]
            log.info("accelerator: %s (%s)", self.accel_choice.accel, self.accel_choice.reason)
        cmd += qemu_accel_args(self.accel_choice)
        if self.hold_resets:
            # A guest reset pauses QEMU instead of rebooting it: the harness reads
            # the disk between two boots, then releases it (release_reset).
            cmd += ["-action", "reboot=shutdown,shutdown=pause"]
        if self.env_flash is not None:
            flash = self.target.env.config.get_image_path(self.env_flash)
            cmd += ["-drive", f"if=pflash,unit=1,format=raw,readonly=on,file={flash}"]
        if self.firmware_code is not None:
            code = self.target.env.config.get_image_path(self.firmware_code)
            cmd += ["-drive", f"if=pflash,unit=0,format=raw,readonly=on,file={code}"]
        if self.firmware_vars is not None:
            if getattr(self, "_tempdir", None):
                cmd += ["-drive", f"if=pflash,unit=1,format=raw,file={self._vars_copy()}"]
            else:  # a command line asked for outside a run (bench): never write the cache
                vars_file = self.target.env.config.get_image_path(self.firmware_vars)
                cmd += ["-drive", f"if=pflash,unit=1,format=raw,snapshot=on,file={vars_file}"]
        cmd += hotplug.qemu_args(self.hotplug_bus, self.hotplug_ports)  # type: ignore[arg-type]
        if self.watchdog is not None:
            # Its expiry is a guest reset: with hold_resets the harness sees it
            # as any other reset, and the WATCHDOG event says who caused it.
            cmd += ["-device", f"{self.watchdog},id=ab-watchdog", "-action", "watchdog=reset"]
        return self._disk_as_graph(cmd)

    def _vars_copy(self) -> Path:
        """The UEFI variable store this activation writes: a copy of the image's,
        made once, so it persists across power cycles of one test (NVRAM does)
        and every test starts from the pristine store."""
        source = Path(self.target.env.config.get_image_path(self.firmware_vars))
        copy = Path(self._tempdir) / f"vars-{source.name}"
        if not copy.exists():
            shutil.copyfile(source, copy)
        return copy

    def _disk_as_graph(self, cmd: list[str]) -> list[str]:
        """Replace labgrid's `-drive if=virtio` for the disk with the named graph.

        labgrid builds that argument itself (pinned by tests/test_qemu.py);
        for machines where it attaches the disk otherwise (SD card), the
        disk stays as labgrid made it and faults that need the graph refuse.
        """
        if self.disk is None:
            return cmd
        disk = Path(self.target.env.config.get_image_path(self.disk))
        for i in range(len(cmd) - 1):
            if (
                cmd[i] == "-drive"
                and cmd[i + 1].startswith("if=virtio,")
                and f"file={disk}" in cmd[i + 1]
            ):
                break
        else:
            if self.disk_bus != "virtio":
                raise HarnessConfigError(
                    f"ABQEMUDriver disk_bus '{self.disk_bus}' needs the disk as labgrid attaches "
                    f"it on machine virt, pc or q35, not on '{self.machine}'",
                    "use machine virt, or drop disk_bus",
                )
            if self.write_log is not None:
                raise HarnessConfigError(
                    f"ABQEMUDriver write_log needs a virtio disk, but machine "
                    f"'{self.machine}' attaches it otherwise",
                    "use machine virt, pc or q35, or drop write_log",
                )
            return cmd
        log_path = None
        if self.write_log is not None:
            log_path = Path(self.write_log).resolve()
            # QEMU's file driver opens, never creates, and never truncates: a
            # stale longer log would be read as this one's tail. Start empty.
            log_path.write_bytes(b"")
        self.disk_graph = DiskGraph.from_drive_options(
            disk, self.disk_opts, log_path, self.disk_bus
        )
        return cmd[:i] + self.disk_graph.qemu_args() + cmd[i + 2 :]

    @property
    def payload_ports(self) -> list[hotplug.HotplugPort]:
        """Where payload disks can be hot-plugged (PCIe root ports or SCSI ids)."""
        return hotplug.ports(self.hotplug_bus, self.hotplug_ports)  # type: ignore[arg-type]

    def on_activate(self) -> None:
        try:
            super().on_activate()
            # Who owns this temp folder: a later run removes it if this process
            # died without cleaning up (SIGKILL), see remove_stale_tempdirs().
            (Path(self._tempdir) / OWNER_FILE).write_text(f"{os.getpid()}\n")
        except BaseException:
            # Cut short (a Ctrl-C during the accelerator probe): the driver is
            # not active, so no deactivation removes the folder labgrid made.
            drop_tempdir(getattr(self, "_tempdir", None), getattr(self, "_socket", None))
            raise
        self.qmp_socket = Path(self._tempdir) / "harness-qmp.sock"
        # The harness's own control channel (resets, pause): with ids and
        # deadlines, unlike labgrid's monitor, whose reply read has none;
        # and one for faults (throttle, blkdebug), used from their threads.
        self._ctl_socket = Path(self._tempdir) / "harness-ctl.sock"
        self.fault_qmp_socket = Path(self._tempdir) / "harness-faults-qmp.sock"
        for sock in (self.qmp_socket, self._ctl_socket, self.fault_qmp_socket):
            self._cmd += ["-qmp", f"unix:{sock},server=on,wait=off"]

    def on(self) -> None:
        """Start QEMU (paused), connect console and QMP, then let it run."""
        if self.status:
            return
        self._stderr_path = Path(self._tempdir) / "qemu.stderr"
        log.debug("starting: %s", " ".join(self._cmd))
        with self._stderr_path.open("wb") as stderr:
            self._child = subprocess.Popen(
                self._cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                preexec_fn=die_with_parent,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            ready, _, _ = select.select([self._socket], [], [], 0.05)
            if ready:
                break
            if self._child.poll() is not None:
                self._reap_failed_start("exited before connecting its serial console")
            if time.monotonic() > deadline:
                self._reap_failed_start(
                    f"did not connect its serial console within {self.start_timeout:.0f} s"
                )
        self._clientsocket, _ = self._socket.accept()
        self._clientsocket.setblocking(False)
        self._pump = ConsolePump(self._clientsocket)
        try:
            self.qmp = QMPMonitor(self._child.stdout, self._child.stdin)
        except Exception:  # labgrid raises bare errors when QEMU dies mid-greeting
            self._reap_failed_start("failed during the QMP greeting")
        self.status = 1
        if self._ctl_socket is not None:
            self._ctl = QmpChannel.connect(self._ctl_socket, timeout_s=self.start_timeout)
        self.monitor_command("cont")

    def _reap_failed_start(self, what: str) -> None:
        self._kill()
        raise DeviceError(
            f"QEMU {what}: {self.stderr_tail() or 'no error output'}",
            "check the QEMU arguments in the target YAML and that the images exist",
        )

    def stderr_tail(self, lines: int = 3) -> str:
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        text = self._stderr_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def off(self) -> None:
        """Stop QEMU with SIGTERM; kill it if it has not exited within stop_timeout.

        Not QMP `quit`: labgrid's monitor reads its reply without a deadline,
        so a wedged QEMU would hang the teardown. SIGTERM makes QEMU shut down
        the same way and needs no reply.
        """
        if not self.status or self._child is None:
            return
        # Close the console first: a QEMU whose serial output nobody reads
        # spins on a full socket (EAGAIN) and ignores SIGTERM; a closed peer
        # makes its writes fail at once, and it exits in milliseconds.
        self._close_console()
        if self._child.poll() is None:
            self._child.terminate()
        try:
            self._child.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("QEMU ignored SIGTERM for %.0f s; killing it", self.stop_timeout)
        self._kill()

    @property
    def alive(self) -> bool:
        """QEMU is running (not off, not killed by a power cut)."""
        return bool(self.status) and self._child is not None and self._child.poll() is None

    def _monitor(
        self, command: str, arguments: dict[str, object] | None = None, timeout_s: float = 2.0
    ) -> Any:
        """A QMP command on the harness's control channel, with a deadline.

        A guest flooding a console nobody reads stalls QEMU's main loop, so a
        command may get no answer until the console is drained again: the
        caller gets a DeviceError after `timeout_s` and goes back to reading.
        QEMU dying meanwhile is a DeviceError too.
        """
        if self._ctl is None or not self.alive:
            raise DeviceError(
                f"QEMU is not running; cannot send it '{command}': {self.stderr_tail()}",
                "see the serial log; a power cut (fault) also ends QEMU",
            )
        return self._ctl.execute(command, arguments, timeout_s=timeout_s)

    def held_in_reset(self) -> bool:
        """True while a guest reset holds the machine (hold_resets); False also
        when QEMU does not answer in time (asked again at the next poll)."""
        if not self.hold_resets or not self.alive:
            return False
        try:
            status = self._monitor("query-status", timeout_s=1.0)
        except DeviceError as err:
            log.debug("query-status: %s", err)
            return False
        return bool(status.get("status") == "shutdown")

    def reset_cause(self) -> str | None:
        """Who reset the guest held in reset, from QEMU's events since the last
        call: "watchdog" when the watchdog device expired, else the SHUTDOWN
        event's reason ("guest-reset", "guest-panic", ...); None if unknown."""
        if self._ctl is None or not self.alive:
            return None
        try:
            events = self._ctl.events(timeout_s=1.0)
        except DeviceError as err:
            log.debug("reading QEMU events: %s", err)
            return None
        names = [e.get("event") for e in events]
        if "WATCHDOG" in names:
            return "watchdog"
        reasons = [e.get("data", {}).get("reason") for e in events if e.get("event") == "SHUTDOWN"]
        return str(reasons[-1]) if reasons and reasons[-1] else None

    def release_reset(self) -> None:
        """Let a machine held in reset boot again (a real reset, then run)."""
        self._monitor("set-action", {"reboot": "reset"})
        self._monitor("system_reset")
        self._monitor("cont")
        self._monitor("set-action", {"reboot": "shutdown"})

    def pause(self) -> bool:
        """Stop the guest's CPUs (the disk is then quiet for a consistent read).

        True when the guest may now be stopped, so the caller must `resume()`:
        a `stop` that got no answer in time can still take effect later (a
        loaded host answers late), and a guest left stopped would look hung.
        False when QEMU is not running or refused.
        """
        if not self.alive:
            return False
        try:
            self._monitor("stop", timeout_s=_PAUSE_TIMEOUT_S)
        except QmpCommandError as err:
            log.warning("QEMU refused to pause for a consistent read: %s", err)
            return False
        except DeviceError as err:
            log.warning("no answer to 'stop' in time (resuming anyway): %s", err.cause)
            return self.alive
        return True

    def resume(self) -> None:
        """Let a paused guest run again; retried until `_RESUME_DEADLINE_S`, since
        a guest left stopped by a lost answer would hang the test."""
        deadline = time.monotonic() + _RESUME_DEADLINE_S
        while self.alive:
            try:
                self._monitor("cont", timeout_s=5.0)
                return
            except QmpCommandError as err:
                # E.g. held in reset since ("resetting ... is required"): the
                # reset gate releases it; nothing to resume.
                log.debug("cont refused: %s", err)
                return
            except DeviceError:
                if time.monotonic() >= deadline:
                    raise
                log.warning("no answer to 'cont' in time; asking again")

    @property
    def pid(self) -> int | None:
        """The QEMU process id while it runs, else None."""
        return self._child.pid if self._child is not None else None

    def kill_process(self) -> None:
        """SIGKILL QEMU, callable from any thread (a fault's watcher); touches no
        socket or pipe: the console read in the test's thread then ends with the
        usual "QEMU exited" DeviceError, and `power_cut()` settles the state."""
        self.kill_now()

    def explain_stall(self) -> str | None:
        """Why the guest stopped making progress, when QEMU knows: a write error
        QEMU answered by pausing the guest (a full host disk: ENOSPC)."""
        if not self.alive:
            return None
        try:
            status = self._monitor("query-status", timeout_s=1.0)
            if status.get("status") != "io-error":
                return None
            devices = self._monitor("query-block", timeout_s=2.0)
        except DeviceError:
            return None
        for device in devices:
            if device.get("io-status") == "nospace":
                name = device.get("qdev") or device.get("device") or "the disk"
                where = self.disk_path or "the disk image"
                return (
                    f"host disk full: QEMU paused the guest on a write error (ENOSPC) on {name}"
                    f" — fix: free space on the filesystem holding {where}"
                )
        failed = [d.get("qdev") or d.get("device") for d in devices if d.get("io-status")]
        return f"QEMU paused the guest on a disk write error ({', '.join(map(str, failed))})"

    @property
    def disk_path(self) -> str | None:
        """The disk image file QEMU runs (None without a disk)."""
        if self.disk is None:
            return None
        return str(self.target.env.config.get_image_path(self.disk))

    def kill_now(self) -> int | None:
        """SIGKILL QEMU at once, from any context (a console hook mid-read);
        return its pid, or None if it was not running. `power_cut` reaps it."""
        child = self._child
        if child is None or child.poll() is not None:
            return None
        child.kill()
        return child.pid

    def power_cut(self) -> None:
        """Cut power now: SIGKILL, no flush, no goodbye (what a yanked cable does)."""
        if self.status:
            self._kill()

    def _kill(self) -> None:
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        if self._child is not None:
            if self._child.poll() is None:
                self._child.kill()
            try:
                self._child.wait(timeout=5)
            finally:
                for pipe in (self._child.stdin, self._child.stdout):
                    if pipe is not None:
                        pipe.close()
        self._child = None
        self._close_console()
        self.status = 0

    def _close_console(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None:
            pump.close()
        if self._clientsocket is not None:
            self._clientsocket.close()
            self._clientsocket = None

    def _read(self, size: int = 1, timeout: float = 10, max_size: int | None = None) -> Any:
        if self._clientsocket is None:
            raise DeviceError(
                "the QEMU console is closed (QEMU is off)",
                "power the target on before reading its console",
            )
        if self._pump is None:  # connected by labgrid's own on(): read as it does
            data: bytes = super()._read(size=size, timeout=timeout, max_size=max_size)
        else:
            data = self._pump.read(max_size or _READ_CHUNK, timeout)
        if data == b"" and self._child is not None and self._child.poll() is not None:
            code = self._child.returncode
            raise DeviceError(
                f"QEMU exited (code {code}) while the test was reading its console: "
                f"{self.stderr_tail() or 'no error output'}",
                "see the serial log; a guest 'reboot' under -no-reboot also exits QEMU",
            )
        return data
