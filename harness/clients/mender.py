"""The real Mender client (Debian's mender-client 3.4, standalone mode) as an update client.

Everything the harness knows about Mender's command line, its artifacts and
its log lines lives here. The image must carry the client: its recipe's
Mender flavour (`<recipe>-mender`, qemu-images/imagekit/mender.py), which the
plugin picks because this adapter names it (`image_flavour`).

What the device is handed is what a person would hand it: a FAT "USB key"
holding `update.mender`, a rootfs-image artifact built with the harness's
builder from the same rootfs payload the shell agent gets (so `payloads["v2"]`
means the same release for both clients). The artifact is named after the
release (`ab-harness-v2`), for the device type the image's manifest names.
Artifacts and keys are made once per image and payload and cached beside
the image cache (`<cache>/artifacts/`).

Mender does not print the hash it checked: it verifies every payload file
against the artifact's manifest while it streams it into the slot and
refuses the install on a mismatch, so `device_sha256` is None and the
harness checks the slot on the host instead when it needs to
(`observe.slot_sha256`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from harness.artifacts.builder import ArtifactSpec, write_rootfs_image
from harness.clients import package_cache
from harness.clients.base import ClientBelief, ClientResult
from harness.delivery.fat_key import run_from_key
from harness.device.shell import ShellLike
from harness.images import Payload

log = logging.getLogger(__name__)

ARTIFACT_FILE = "update.mender"
# Shipped in every artifact the harness builds for a hardened image (an image
# whose manifest says `"design": "stock"` gets artifacts with no state script
# of ours: Mender's own single commit write is what is under test there).
# Mender's commit writes
# upgrade_available=0 once, and every Mender env write starts with a probe
# write of the env as it was, so on U-Boot's redundant env the other copy
# still says "on trial, bootcount=1": a lost newest copy would roll the
# committed release back (scenarios/test_corrupt_env_copies.py). The release
# writes the commit a second time, into that other copy. GRUB's tools write
# both copies every time, so there it does nothing.
COMMIT_BOTH_COPIES = "ArtifactCommit_Leave_50_commit_both_env_copies"
COMMIT_BOTH_COPIES_SCRIPT = """#!/bin/sh
# See harness/clients/mender.py: the commit, once more, into the other env copy.
[ -f /etc/fw_env.config ] || exit 0
# The script form: with "fw_setenv NAME VALUE" the other copy kept the trial
# state here (no second save seen); "-s" saves every time, as Mender's probe shows.
echo upgrade_available=0 | fw_setenv -s - || exit 1
sync
echo "ab-mender: commit written to the second env copy"
"""
# `mender commit` with nothing to commit (installer.ErrorNothingToCommit) exits 2,
# logging the error's words; it prints "Committing Artifact..." only once it has
# restored an update from its database.
_NOTHING_TO_COMMIT = 2
_NOTHING_TO_COMMIT_SAID = "There is nothing to commit"
_RESTORED_AN_UPDATE = "Committing Artifact..."
# How 3.4's commit says the bootloader went back (its error, exit 1).
_LEARNS_OF_ROLLBACK = "the bootloader rolled back"
# Said when the env has an update on trial, so the commit probe is not made.
_NOT_PROBED = "ab-harness: upgrade_available=1, no commit probe"
_NOT_PROBED_EXIT = 97
# logrus's two text formats: on a terminal (the device's console, where the
# harness's shell runs) `INFO[0007] message`, coloured; elsewhere key=value.
_TTY_LINE = re.compile(r"^(?P<level>[A-Z]{4})\[\d+\] (?P<msg>.*?)\s*$")
_KV_LINE = re.compile(r'^time="[^"]*" level=(?P<level>\w+) msg="(?P<msg>(?:[^"\\]|\\.)*)"')
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LEVELS = {
    "TRAC": "trace",
    "DEBU": "debug",
    "INFO": "info",
    "WARN": "warning",
    "ERRO": "error",
    "FATA": "fatal",
    "PANI": "panic",
}


@dataclass(frozen=True)
class MenderLogLine:
    """One line the client logged: its level (info, warning, error...) and message."""

    level: str
    message: str


def log_lines(output: str) -> list[MenderLogLine]:
    """The client's own log lines in a command's output (its other output,
    such as `Installing Artifact of size ...`, is left out)."""
    found = []
    for raw in output.splitlines():
        line = _ANSI.sub("", raw).strip()
        tty = _TTY_LINE.match(line)
        if tty and tty.group("level") in _LEVELS:
            found.append(MenderLogLine(_LEVELS[tty.group("level")], tty.group("msg")))
            continue
        kv = _KV_LINE.match(line)
        if kv:
            found.append(MenderLogLine(kv.group("level"), kv.group("msg").replace('\\"', '"')))
    return found


@dataclass(frozen=True)
class MenderTarget:
    """What the image's manifest says about its Mender client."""

    device_type: str
    artifact_names: dict[str, str]
    # "stock": the image runs Mender as shipped, so its artifacts carry no state
    # script of ours; "hardened": they carry COMMIT_BOTH_COPIES.
    design: str = "hardened"


def mender_target(payload: Payload) -> MenderTarget:
    """The Mender section of the manifest of the image `payload` belongs to."""
    section, _ = package_cache.manifest_section(
        payload,
        "mender",
        "Mender client",
        "run with --ab-client mender, which picks the image's Mender flavour",
    )
    return MenderTarget(
        str(section["device_type"]),
        dict(section["artifact_names"]),
        str(section.get("design", "hardened")),
    )


def artifact_for(payload: Payload, spec: ArtifactSpec | None = None, tag: str = "") -> Path:
    """The rootfs-image artifact of `payload` (built once, then cached): named
    after the release, for the image's device type, unless `spec` says
    otherwise (`tag` then names the variant in the cache)."""
    target = mender_target(payload)
    folder = package_cache.cache_dir(payload)
    if spec is None:
        scripts: tuple[Path, ...] = ()
        if target.design != "stock":
            script = folder / COMMIT_BOTH_COPIES
            if not script.is_file() or script.read_text() != COMMIT_BOTH_COPIES_SCRIPT:
                script.write_text(COMMIT_BOTH_COPIES_SCRIPT)
            scripts = (script,)
        spec = ArtifactSpec(
            name=target.artifact_names.get(payload.name, f"ab-harness-{payload.name}"),
            device_types=(target.device_type,),
            state_scripts=scripts,
        )
    # Keyed by the payload and by everything the spec puts in the artifact.
    recipe = repr(spec) + "".join(p.read_text() for p in spec.state_scripts)
    variant = hashlib.sha256(recipe.encode()).hexdigest()[:8]
    out = folder / f"{payload.name}{tag}-{payload.sha256[:12]}-{variant}.mender"
    with package_cache.locked(folder / f".{payload.name}{tag}.lock"):
        if not out.is_file():
            partial = out.with_name(f".{out.name}.partial")
            write_rootfs_image(spec, payload.path, partial)
            partial.rename(out)
            log.info("built artifact %s (%d bytes)", out, out.stat().st_size)
    return out


def key_for(artifact: Path, name: str) -> Payload:
    """A FAT key holding `artifact` as update.mender (built once, then cached)."""
    return package_cache.key_for(artifact, ARTIFACT_FILE, f"{name} (Mender key)")


@dataclass(frozen=True)
class MenderClient:
    """`mender install <key>/update.mender`, `mender commit`, `mender rollback`,
    `mender show-artifact`, in standalone mode (no server)."""

    name: str = "mender"
    command: str = "mender --no-syslog"
    # The image the client needs: the target's recipe with this suffix.
    image_flavour: str = "mender"
    # Mender prints no hash of what it wrote (see the module docstring).
    reports_sha256: bool = False
    # A commit reads the env 6 times and writes it 3 times (each write is
    # preceded by a probe write that finds the separator, then a write that
    # undoes it): on GRUB's two locked copies 12-15 s of a boot under load.
    boot_extra_s: float = 30.0
    # /var/lib/mender -> /data/mender: its database (created by the first
    # install, rewritten by each) and the device type.
    data_state: tuple[str, ...] = ("mender",)
    # What a field capture keeps of it: its database (LMDB: the pending
    # update's artifact name and payload types, the installed artifact).
    state_paths: tuple[str, ...] = ("/data/mender/mender-store",)

    def medium(self, payload: Payload) -> Payload:
        """What goes on the key: the payload's artifact on a FAT image."""
        return key_for(artifact_for(payload), payload.name)

    def install(
        self, shell: ShellLike, source: str, expect_sha256: str, timeout_s: float = 180.0
    ) -> ClientResult:
        """Mount the key at `source` (a block device) read-only and install its
        artifact; the key is unmounted again whatever the outcome. An
        expected sha256 is the artifact manifest's business here: Mender
        checks it itself."""
        return self.install_file(shell, source, ARTIFACT_FILE, timeout_s)

    def install_file(
        self, shell: ShellLike, device: str, name: str, timeout_s: float = 180.0
    ) -> ClientResult:
        command, said = run_from_key(device, name, f"{self.command} install")
        code, out = shell.exec(command, timeout_s=timeout_s)
        return ClientResult(said, code, out)

    def install_url(self, shell: ShellLike, url: str, timeout_s: float = 180.0) -> ClientResult:
        """`mender install URL` (HTTP pull, for a device with a network)."""
        return self._run(shell, f"install {shlex.quote(url)}", timeout_s)

    def device_sha256(self, result: ClientResult) -> str | None:
        return None

    def commit(self, shell: ShellLike) -> ClientResult:
        return self._run(shell, "commit")

    def rollback(self, shell: ShellLike) -> ClientResult:
        return self._run(shell, "rollback")

    def status(self, shell: ShellLike) -> ClientResult:
        """The artifact the client says runs (`show-artifact`), then the env it reads."""
        command = (
            f"( {self.command} show-artifact; rc=$?; "
            "fw_printenv upgrade_available mender_boot_part bootcount; exit $rc )"
        )
        code, out = shell.exec(command)
        return ClientResult(f"{self.command} show-artifact", code, out)

    def show_artifact(self, shell: ShellLike) -> str:
        """The artifact name the client reports (its database, else artifact_info)."""
        code, out = shell.exec(f"{self.command} show-artifact 2>/dev/null")
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        return lines[-1] if code == 0 and lines else ""

    def _run(self, shell: ShellLike, verb: str, timeout_s: float = 60.0) -> ClientResult:
        command = f"{self.command} {verb}"
        code, out = shell.exec(command, timeout_s=timeout_s)
        return ClientResult(command, code, out)

    def before_health_pattern(self, slot: str) -> str:
        """The image's init prints this line before its health check, which
        commits through `mender commit` (the same init as the shell agent's)."""
        return rf"ab-init: slot={slot} "

    def log_lines(self, result: ClientResult) -> list[MenderLogLine]:
        """What the client logged during one command."""
        return log_lines(result.output)

    def believes(self, shell: ShellLike) -> ClientBelief:
        """`mender show-artifact` (the name in its database, else the rootfs's
        artifact_info), then `mender commit`, the command the image's health
        check runs at a boot on trial and a person would run next.

        Debian's Mender 3.4, as measured on the device: with no update in its
        database and none on trial in the env it logs "Could not commit
        Artifact: There is nothing to commit" and exits 2 — the clean answer
        of a settled device. When its database still holds an update, it
        prints "Committing Artifact..." first: it believed an update pending,
        and if the env has none on trial the commit fails ("Commit failed:
        Reboot to the new update failed ...", exit 1) and it runs its rollback
        states. Exit 0 means it committed one. While the env says
        upgrade_available=1 the probe is not made (it would commit an update
        on trial for the device): pending is then unknown."""
        code, out = shell.exec(f"{self.command} show-artifact")
        show = ClientResult(f"{self.command} show-artifact", code, out)
        names = [
            line.strip()
            for line in _ANSI.sub("", out).splitlines()
            if line.strip() and not log_lines(line)
        ]
        installed = names[-1] if show.ok and names else ""
        probe = (
            '[ "$(fw_printenv -n upgrade_available 2>/dev/null)" = 1 ] '
            f"&& {{ echo '{_NOT_PROBED}'; exit {_NOT_PROBED_EXIT}; }}; "
            f"{self.command} commit"
        )
        code, out = shell.exec(f"( {probe} )", timeout_s=60.0)
        commit = ClientResult(f"{self.command} commit", code, out)
        errors = [
            line.message
            for line in log_lines(out)
            if line.level in ("error", "fatal", "panic")
            and not line.message.endswith(_NOTHING_TO_COMMIT_SAID)
        ]
        if code == 1 and _LEARNS_OF_ROLLBACK in out:
            return self._after_rollback(shell, installed, show, commit)
        pending: bool | None
        if code == _NOT_PROBED_EXIT and _NOT_PROBED in out:
            pending, clean = None, True
        elif code == 0:
            pending, clean = True, True
        elif _RESTORED_AN_UPDATE in out:
            pending, clean = True, False
        elif code == _NOTHING_TO_COMMIT:
            pending, clean = False, not errors
        else:
            pending, clean = None, False
        return ClientBelief(installed, pending, show.ok and clean, (show, commit))

    def _after_rollback(
        self, shell: ShellLike, installed: str, show: ClientResult, commit: ClientResult
    ) -> ClientBelief:
        """The commit told the client that the bootloader rolled back: that is
        how 3.4 in standalone mode learns of a rollback (its database keeps the
        update until then; see docs/findings.md), and its answer is the
        right one. Its books must be settled afterwards: a second commit must
        find nothing to commit."""
        code, out = shell.exec(f"{self.command} commit", timeout_s=60.0)
        again = ClientResult(f"{self.command} commit", code, out)
        settled = code == _NOTHING_TO_COMMIT and _NOTHING_TO_COMMIT_SAID in out
        return ClientBelief(
            installed,
            False if settled else None,
            show.ok and settled,
            (show, commit, again),
            note="learned of the bootloader's rollback at its next commit",
        )

    def slot_release(self, shell: ShellLike) -> str:
        """The artifact_name in the running rootfs's /etc/mender/artifact_info."""
        out = shell.exec0("sed -n 's/^artifact_name=//p' /etc/mender/artifact_info")
        return out.strip().splitlines()[-1].strip() if out.strip() else ""
