"""The real SWUpdate (Debian's swupdate 2022.12) as an update client.

Everything the harness knows about SWUpdate's command line, its .swu files
and its log lines lives here. The image must carry it: the SWUpdate image
(qemu-images/arm64-uboot-swupdate), whose U-Boot runs SWUpdate's dual-copy
contract (`bootloader: uboot-swupdate`).

What the device is handed is what a person would hand it: a FAT "USB key"
holding `update.swu`, built with Debian's cpio and openssl from the same
rootfs payload the other clients get (so `payloads["v2"]` means the same
release for every client), signed by the image's test signer (Debian's
build refuses unsigned .swu files). Which copy is the standby is, as
SWUpdate's documentation leaves it to the integration, decided before
SWUpdate runs: the .swu has one mode per running copy, named after the root
device `swupdate -g` prints, and the install selects `-e stable,<that name>`.

SWUpdate keeps no books of its own on the device: what it knows afterwards
is in the bootloader env (`ustate`, its state marker; `recovery_status`, its
transaction marker) and in the running rootfs's /etc/sw-versions. Its exit
status in check mode races its threads (tests/bundle_kit.py), so every
verdict here is read from its log lines.
"""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.swu_writer import Copy, Signer, compress_rootfs, dual_copy_description
from harness.artifacts.swu_writer import write_swu as pack
from harness.bootloaders.uboot_swupdate import USTATES
from harness.clients import package_cache
from harness.clients.base import ClientBelief, ClientResult
from harness.device.shell import ShellLike
from harness.images import Payload
from harness.images.userfiles import sha256_of

log = logging.getLogger(__name__)

SWU_FILE = "update.swu"
COLLECTION = "stable"
CONFIRM = "/usr/sbin/swupdate-confirm"
# SWUpdate's log lines: `[LEVEL] : SWUPDATE <state> :  [function] : message`
# (the bracketed function only at trace/debug), its progress lines unbracketed.
_LINE = re.compile(
    r"^\[(?P<level>[A-Z]+)\s*\] : SWUPDATE (?P<state>[\w ]+?) :\s+(?:\[(?P<where>\w+)\] : )?"
    r"(?P<msg>.*?)\s*$"
)
_SUCCEEDED = ("SWUPDATE successful", "SWUpdate was successful")
_FAILED = "SWUPDATE failed"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The exit code given to an install whose log says it failed though swupdate exited 0.
_FAILED_BY_LOG = 1


@dataclass(frozen=True)
class SwupdateLogLine:
    """One line SWUpdate logged: its level (INFO, ERROR...), the function
    that logged it where it says, and the message."""

    level: str
    where: str
    message: str


def log_lines(output: str) -> list[SwupdateLogLine]:
    """SWUpdate's own log lines in a command's output (other lines left out)."""
    found = []
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).strip()
        match = _LINE.match(line)
        if match:
            found.append(
                SwupdateLogLine(
                    match.group("level"), match.group("where") or "", match.group("msg")
                )
            )
    return found


def install_succeeded(output: str) -> bool:
    """What SWUpdate's log says of an install (or a check): it reached success
    and logged no failure. Either success line may be the last one printed."""
    return any(s in output for s in _SUCCEEDED) and _FAILED not in output


def parse_env(output: str) -> dict[str, str]:
    """`fw_printenv` output (`name=value` lines) as a dict; other lines ignored."""
    pairs = {}
    for line in output.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and re.fullmatch(r"[\w.-]+", name):
            pairs[name] = value
    return pairs


def sw_versions(text: str) -> dict[str, str]:
    """/etc/sw-versions (`name version` a line), SWUpdate's record of what runs."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            found[parts[0]] = parts[1]
    return found


@dataclass(frozen=True)
class SwupdateTarget:
    """What the image's manifest says about its SWUpdate."""

    hardware: tuple[str, str]  # /etc/hwrevision: board, revision
    release_names: dict[str, str]
    slot_devices: dict[str, str]  # slot -> the Linux device of its copy
    bootpart: dict[str, str]  # slot -> the value of bootpart that boots it
    signer: Signer


def swupdate_target(payload: Payload) -> SwupdateTarget:
    """The SWUpdate section of the manifest of the image `payload` belongs to."""
    section, manifest_path = package_cache.manifest_section(
        payload,
        "swupdate",
        "SWUpdate",
        "run on a target whose image carries SWUpdate (qemu-arm64-uboot-swupdate)",
    )
    keys = {k: manifest_path.parent / v for k, v in section["keys"].items()}
    board, revision = section["hardware"]
    return SwupdateTarget(
        (str(board), str(revision)),
        dict(section["release_names"]),
        dict(section["slot_devices"]),
        dict(section["bootpart"]),
        Signer(keys["cert"], keys["key"], keys["ca"]),
    )


def description_for(payload: Payload, target: SwupdateTarget, image_sha256: str) -> str:
    """The payload's sw-description: from each copy into the other one, with
    the bootenv SWUpdate's U-Boot contract wants (the other copy, U-Boot's
    count armed)."""
    copies = []
    for running, standby in (("A", "B"), ("B", "A")):
        copies.append(
            Copy(
                running=Path(target.slot_devices[running]).name,
                device=target.slot_devices[standby],
                bootenv={
                    "bootpart": target.bootpart[standby],
                    "upgrade_available": "1",
                    "bootcount": "0",
                },
            )
        )
    release = target.release_names.get(payload.name, f"ab-harness-{payload.name}")
    return dual_copy_description(
        payload.version or payload.name,
        release,
        "rootfs.ext4.zst",
        image_sha256,
        copies,
        (target.hardware[1],),
        COLLECTION,
    )


def swu_for(payload: Payload, description: str | None = None, tag: str = "") -> Path:
    """The payload's .swu, signed by the image's signer (built once, then
    cached); `description` replaces the standard one (`tag` then names the
    variant in the cache; "{sha256}" in it is the compressed image's hash)."""
    target = swupdate_target(payload)
    folder = package_cache.cache_dir(payload)
    out = folder / f"{payload.name}{tag}-{payload.sha256[:12]}.swu"
    with package_cache.locked(folder / f".{payload.name}{tag}.swu.lock"):
        if not out.is_file():
            packed = folder / f"{payload.name}-{payload.sha256[:12]}.ext4.zst"
            if not packed.is_file():
                partial = packed.with_name(f".{packed.name}.partial")
                compress_rootfs(payload.path, partial)
                partial.rename(packed)
            digest = sha256_of(packed)
            text = (
                description.replace("{sha256}", digest)
                if description is not None
                else description_for(payload, target, digest)
            )
            pack(text, {"rootfs.ext4.zst": packed}, out, target.signer)
            log.info("built %s (%d bytes)", out, out.stat().st_size)
    return out


@dataclass(frozen=True)
class SwupdateClient:
    """`swupdate -e stable,<running copy> -i <key>/update.swu`, the image's
    confirm, and SWUpdate's state read back through libubootenv."""

    name: str = "swupdate"
    command: str = "swupdate -v"
    # The image the client needs: the target's recipe with this suffix.
    image_flavour: str = "swupdate"
    # The bootloader contract SWUpdate's image runs (its U-Boot's default env),
    # and a target that runs it.
    contracts: tuple[str, ...] = ("uboot-swupdate",)
    example_target: str = "qemu-arm64-uboot-swupdate"
    # SWUpdate logs no hash of what it wrote: it checks each image against
    # sw-description's sha256 itself and refuses the install on a mismatch.
    reports_sha256: bool = False
    # The confirm is one env write: nothing beyond an ordinary boot.
    boot_extra_s: float = 0.0
    # It keeps nothing on the data partition.
    data_state: tuple[str, ...] = ()
    state_paths: tuple[str, ...] = ("/etc/sw-versions",)

    def medium(self, payload: Payload) -> Payload:
        """What goes on the key: the payload's .swu on a FAT image."""
        return package_cache.key_for(swu_for(payload), SWU_FILE, f"{payload.name} (SWUpdate key)")

    def install(
        self, shell: ShellLike, source: str, expect_sha256: str, timeout_s: float = 180.0
    ) -> ClientResult:
        """Mount the key at `source` (a block device) read-only and install its
        update.swu into the standby copy; the key is unmounted whatever the
        outcome. The expected sha256 is sw-description's business: SWUpdate
        checks it itself."""
        mount = f"/run/ab-key/{Path(source).name}"
        swu = shlex.quote(f"{mount}/{SWU_FILE}")
        script = (
            f"mkdir -p {mount} && mount -t vfat -o ro {shlex.quote(source)} {mount}"
            f" || {{ echo 'ab-key: cannot mount {source}'; exit 90; }}; "
            f"{self._select()}"
            f"{self.command} -e {COLLECTION},$running -i {swu}; rc=$?; umount {mount}; exit $rc"
        )
        code, out = shell.exec(f"( {script} )", timeout_s=timeout_s)
        return self._result(f"{self.command} -e {COLLECTION},<running> -i {swu}", code, out)

    def install_url(self, shell: ShellLike, url: str, timeout_s: float = 180.0) -> ClientResult:
        """SWUpdate's own downloader (`-d "-u URL"`), for a device with a network."""
        script = (
            f"{self._select()}{self.command} -e {COLLECTION},$running -d {shlex.quote('-u ' + url)}"
        )
        code, out = shell.exec(f"( {script} )", timeout_s=timeout_s)
        return self._result(f"{self.command} -e {COLLECTION},<running> -d '-u {url}'", code, out)

    @staticmethod
    def _select() -> str:
        """The running copy, as SWUpdate itself finds the root device."""
        return (
            'root=$(swupdate -g) && [ -n "$root" ] '
            "|| { echo 'swupdate -g: no root device'; exit 91; }; running=${root##*/}; "
        )

    @staticmethod
    def _result(command: str, code: int, out: str) -> ClientResult:
        """swupdate's exit status, unless its log says it failed after all."""
        if code == 0 and not install_succeeded(out):
            code = _FAILED_BY_LOG
        return ClientResult(command, code, out)

    def device_sha256(self, result: ClientResult) -> str | None:
        return None

    def commit(self, shell: ShellLike) -> ClientResult:
        """The image's confirm (ustate=0, U-Boot's count stopped)."""
        code, out = shell.exec(CONFIRM)
        return ClientResult(CONFIRM, code, out)

    def rollback(self, shell: ShellLike) -> ClientResult:
        """Give the tested copy up as the bootloader's fallback would: the other
        copy, ustate=3 (FAILED), U-Boot's count stopped. SWUpdate has no command
        of its own for it."""
        script = (
            'case "$(fw_printenv -n bootpart)" in 0:2) other=0:3 ;; *) other=0:2 ;; esac; '
            "printf 'bootpart=%s\\nustate=3\\nupgrade_available=0\\n' \"$other\" "
            "> /tmp/swupdate-rollback.env && fw_setenv -s /tmp/swupdate-rollback.env"
        )
        code, out = shell.exec(f"( {script} )")
        return ClientResult("fw_setenv -s (bootpart, ustate=3)", code, out)

    def status(self, shell: ShellLike) -> ClientResult:
        """The root device SWUpdate finds, then its markers in the env."""
        command = "( swupdate -g; rc=$?; fw_printenv; exit $rc )"
        code, out = shell.exec(command)
        return ClientResult("swupdate -g; fw_printenv", code, out)

    def before_health_pattern(self, slot: str) -> str:
        """The image's init prints this line before its health check, which
        confirms through swupdate-confirm (the same init as the shell agent's)."""
        return rf"ab-init: slot={slot} "

    def log_lines(self, result: ClientResult) -> list[SwupdateLogLine]:
        return log_lines(result.output)

    def believes(self, shell: ShellLike) -> ClientBelief:
        """SWUpdate's own view: the root device it would update from
        (`swupdate -g`), the running software it records (/etc/sw-versions),
        and its state marker in the env, read through libubootenv as SWUpdate
        reads it (`fw_printenv`): ustate 1 (INSTALLED) or 2 (TESTING) is an
        update under test, 0 or 3 (FAILED) none. A `recovery_status` left in
        the env (an install cut short) is noted. Its next command is clean when
        both reads succeed: the env it must write next is readable. With no
        books of its own, the release it calls installed is the running
        rootfs's record, so its belief can only disagree on what is pending
        and on whether it can go on."""
        code, out = shell.exec("swupdate -g")
        root = ClientResult("swupdate -g", code, out)
        code, out = shell.exec("cat /etc/sw-versions")
        versions = ClientResult("cat /etc/sw-versions", code, out)
        code, out = shell.exec("fw_printenv")
        env_read = ClientResult("fw_printenv", code, out)
        installed = sw_versions(versions.output).get("rootfs", "") if versions.ok else ""
        env = parse_env(env_read.output) if env_read.ok else {}
        ustate = env.get("ustate")
        pending: bool | None
        if not env_read.ok:
            pending = None
        elif ustate in (None, "0", "3"):
            pending = False
        elif ustate in ("1", "2"):
            pending = True
        else:
            pending = None
        notes = [f"ustate={ustate} ({USTATES.get(ustate or '', 'unset')})"]
        if "recovery_status" in env:
            notes.append(f"recovery_status={env['recovery_status']}")
        clean = root.ok and root.output.strip().startswith("/dev/") and env_read.ok
        return ClientBelief(installed, pending, clean, (root, versions, env_read), "; ".join(notes))

    def slot_release(self, shell: ShellLike) -> str:
        """The release the running rootfs carries: its /etc/sw-versions."""
        out = shell.exec0("cat /etc/sw-versions")
        return sw_versions(out).get("rootfs", "")
