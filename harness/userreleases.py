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
is derived on first use from the good one (harness.releases) and cached under
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
from harness.releases import (
    ARTIFACT_INFO,
    KINDS,
    Conventions,
    DerivationImpossible,
    derive,
    read_text,
)
from harness.userfiles import sha256_of

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Release:
    """A release the user gives: its rootfs image and the version the device reports."""

    name: str
    path: Path
    version: str


@dataclass(frozen=True)
class Device:
    """ab-harness.device: the device's own conventions (reference image's by default)."""

    type: str | None = None
    conventions: Conventions = field(default_factory=Conventions)


def _fail(path: Path, where: str, cause: str) -> NoReturn:
    raise HarnessConfigError(f"{path}: {cause}", f"fix the target YAML ({where})")


def parse_releases(data: Mapping[str, Any], path: Path) -> dict[str, Release]:
    """ab-harness.releases, validated: NAME: {path: FILE, version: STRING}."""
    releases = {}
    for name, entry in data.items():
        where = f"ab-harness.releases.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            _fail(path, "ab-harness.releases", f"release name {name!r} is not a plain name")
        if not isinstance(entry, dict):
            _fail(path, where, f"'{where}' must be a mapping with path: and version:")
        unknown = sorted(set(entry) - {"path", "version"})
        if unknown:
            _fail(path, where, f"unknown key '{where}.{unknown[0]}' (allowed: path, version)")
        file, version = entry.get("path"), entry.get("version")
        if not isinstance(file, str) or not isinstance(version, (str, int)):
            _fail(path, where, f"'{where}' needs path: (a file) and version: (as the device says)")
        releases[name] = Release(name, path.parent / Path(file).expanduser(), str(version))
    return releases


def parse_device(data: Mapping[str, Any], path: Path) -> Device:
    """ab-harness.device: type, and where the derivations edit (health_dir, init, kernel, shell)."""
    allowed = {"type", "health_dir", "init", "kernel", "shell"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        _fail(path, "ab-harness.device", f"unknown key 'ab-harness.device.{unknown[0]}' "
              f"(allowed: {', '.join(sorted(allowed))})")  # fmt: skip
    for key, value in data.items():
        if value is not None and not isinstance(value, str):
            _fail(path, "ab-harness.device", f"'ab-harness.device.{key}' must be a string")
    base = Conventions()
    return Device(
        data.get("type"),
        Conventions(
            health_dir=data.get("health_dir", base.health_dir),
            init=data.get("init") or base.init,
            kernel=data.get("kernel") or base.kernel,
            shell=data.get("shell") or base.shell,
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
