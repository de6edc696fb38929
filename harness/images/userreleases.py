"""The user's own releases, named in the target YAML, and the bad ones derived from them.

    ab-harness:
      releases:
        v2: {path: rootfs-v2.ext4, version: "2"}          # as the device reports it
        v2-bad: {path: rootfs-v2-bad.ext4, version: "2-bad"}   # optional
      device:
        type: my-board        # Mender's device type (artifacts are built for it)
        health_dir: /etc/health.d   # where a derived failing check goes (null: none)

A release is a raw rootfs image, the device's version string, and its Mender
artifact name as its own /etc/mender/artifact_info says. A bad release the
YAML does not give (`<good>-bad`, `-broken-kernel`, `-panic-init`, `-hang`)
is derived on first use from the good one (harness.images.releases) and cached under
the harness cache; where that is impossible, the scenario asking for it skips
with the reason. The user's files are only read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from harness.errors import HarnessConfigError
from harness.images import Payload, PayloadSet, UnknownPayload
from harness.images.releases import (
    ARTIFACT_INFO,
    KINDS,
    Conventions,
    DerivationImpossible,
    derive,
    read_text,
)
from harness.images.userfiles import sha256_of
from harness.targets.targetschema import (
    DEFAULT_HEALTH_FAIL,
    DEFAULT_HEALTH_PASS,
    DEFAULT_READY_MARKER,
    Checked,
    section,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Release:
    """A release the user gives: its rootfs image and the version the device reports."""

    name: str
    path: Path
    version: str


@dataclass(frozen=True)
class Device:
    """ab-harness.device: the device's own conventions, the reference image's by
    default (harness.targets.targetschema lists each key): how the harness knows a boot is
    ready, learns the running slot and reads the health check's verdict, and
    where the bad releases' edits go."""

    type: str | None = None
    ready_marker: str = DEFAULT_READY_MARKER
    running_slot: str = "cmdline"  # "cmdline" (root= of /proc/cmdline) | "mounts"
    slot_file: str | None = "/etc/slot"
    health_check: str = "boot"  # "boot": the image checks itself at boot | "none"
    health_pass: str | None = DEFAULT_HEALTH_PASS
    health_fail: str | None = DEFAULT_HEALTH_FAIL
    conventions: Conventions = field(default_factory=Conventions)

    @property
    def version_file(self) -> str | None:
        """The file holding the running release's version (None: none)."""
        return self.conventions.version_file

    def health_pattern(self) -> str | None:
        """One console regex for the verdict, its group `health_pass` or
        `health_fail` set; None when the device prints none."""
        if self.health_check == "none" or not (self.health_pass or self.health_fail):
            return None
        parts = []
        if self.health_pass:
            parts.append(f"(?P<health_pass>{self.health_pass})")
        if self.health_fail:
            parts.append(f"(?P<health_fail>{self.health_fail})")
        return "|".join(parts)


def _fail(path: Path, where: str, cause: str) -> NoReturn:
    raise HarnessConfigError(f"{path}: {cause}", f"fix the target YAML ({where})")


def parse_releases(data: Mapping[str, Any], path: Path) -> dict[str, Release]:
    """ab-harness.releases, validated: NAME: {path: FILE, version: STRING}."""
    releases = {}
    schema = section("ab-harness.releases.NAME")
    for name, entry in data.items():
        if not isinstance(name, str) or not _NAME.match(name):
            _fail(path, "ab-harness.releases", f"release name {name!r} is not a plain name")
        release = Checked(entry, f"ab-harness.releases.{name}", path, schema)
        file = path.parent / Path(release["path"]).expanduser()
        releases[name] = Release(name, file, str(release["version"]))
    return releases


def parse_device(
    data: Mapping[str, Any], path: Path, releases: Mapping[str, Release] | None = None
) -> Device:
    """ab-harness.device, checked against its schema: `type` is required once the
    section is given, or when the target gives its own releases (they are built
    for a device type); each regex must compile."""
    schema = section("ab-harness.device")
    device = Checked(data, "ab-harness.device", path)
    device.reject_unknown(set(schema.names))
    if not device.data and not releases:
        return Device()
    if "type" not in device.data:
        why = "the section is given" if device.data else "the target gives its own releases"
        device.fail(
            f"missing key 'ab-harness.device.type' ({why}): the device type its update "
            "client knows it by (Mender's device_type)"
        )
    values = Checked(device.data, device.where, path, schema)
    for key in ("ready_marker", "health_pass", "health_fail"):
        try:
            re.compile(values[key] or "")
        except re.error as err:
            device.fail(f"'ab-harness.device.{key}' is not a valid regex: {err}")
    return Device(
        values["type"],
        values["ready_marker"],
        values["running_slot"],
        values["slot_file"],
        values["health_check"],
        values["health_pass"],
        values["health_fail"],
        Conventions(
            health_dir=values["health_dir"],
            init=values["init"],
            kernel=values["kernel"],
            shell=values["shell"],
            version_file=values["version_file"],
        ),
    )


@functools.cache
def _hash(path: Path, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # the cache key: a changed file is hashed again
    return sha256_of(path)


class ReleaseSet(PayloadSet):
    """The target's releases as payloads; a missing bad one is derived on first use."""

    def __init__(
        self,
        target: str,
        given: Mapping[str, Payload],
        make: Callable[[str], Payload],
    ) -> None:
        super().__init__(target, given)
        self._make = make

    def __missing__(self, key: str) -> Payload:
        payload = self._make(key)  # raises UnknownPayload or DerivationImpossible
        self[key] = payload
        return payload


def release_payloads(
    target: str,
    releases: Mapping[str, Release],
    device: Device,
    design: str,
    cache: Path,
    skip: Callable[[str], NoReturn],
) -> ReleaseSet:
    """The releases of target `target` as payloads; `skip` is called with the
    reason when a scenario asks for a bad release that cannot be derived."""
    key = hashlib.sha256(repr(sorted(releases.items())).encode()).hexdigest()[:12]
    folder = cache / "releases" / f"{target}-{key}"
    folder.mkdir(parents=True, exist_ok=True)

    def payload(name: str, file: Path, version: str) -> Payload:
        if not file.is_file():
            raise HarnessConfigError(
                f"target '{target}': release {name} ({file}) does not exist",
                f"fix ab-harness.releases.{name}.path",
            )
        stat = file.stat()
        manifest = folder / f"{name}.manifest.json"
        info = read_text(file, ARTIFACT_INFO)
        names = re.findall(r"^artifact_name=(.*)$", info or "", re.M)
        section = {
            "device_type": device.type or "",
            "artifact_names": {name: names[-1].strip() if names else f"{target}-{name}"},
            "design": design,
        }
        manifest.write_text(json.dumps({"name": target, "mender": section}, indent=1))
        sha = _hash(file, stat.st_size, stat.st_mtime_ns)
        return Payload(name, file, sha, version, manifest)

    given = {r.name: payload(r.name, r.path, r.version) for r in releases.values()}

    def make(name: str) -> Payload:
        good, _, kind = name.partition("-")
        if good not in releases or kind not in KINDS:
            raise UnknownPayload(
                f"target '{target}' has no release {name!r}",
                f"name it under ab-harness.releases, or use one of: {', '.join(sorted(given))}"
                f" and the derivable {', '.join(f'{g}-{k}' for g in given for k in KINDS)}",
            )
        try:
            derived = derive(
                releases[good].path, kind, releases[good].version, cache, device.conventions
            )
        except DerivationImpossible as err:
            skip(f"release {name} cannot be derived from {good}: {err}")
        return payload(name, derived.path, derived.version)

    return ReleaseSet(target, given, make)
