"""Fetch Debian packages of a foreign architecture without touching host dpkg state.

apt runs with a private Dir::State/Dir::Cache, so the host's package
database and sources stay as they are; only the host's keyring is used.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from imagekit.run import BuildError, run

log = logging.getLogger(__name__)

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def sources_list(arch: str) -> str:
    """apt sources for bookworm (and its security updates) for one architecture.

    A lab behind its own Debian mirror sets AB_DEBIAN_MIRROR and
    AB_DEBIAN_SECURITY_MIRROR; the defaults are Debian's CDN.
    """
    main = os.environ.get("AB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    security = os.environ.get("AB_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    return (
        f"deb [arch={arch} signed-by={KEYRING}] {main} bookworm main\n"
        f"deb [arch={arch} signed-by={KEYRING}] {security} bookworm-security main\n"
    )


@dataclass(frozen=True)
class AptRoot:
    """A private apt configuration for one architecture under `root`."""

    arch: str
    root: Path

    def options(self) -> list[str]:
        state = self.root / "state"
        return [
            "-o",
            f"APT::Architecture={self.arch}",
            "-o",
            f"APT::Architectures::={self.arch}",
            "-o",
            f"Dir::State={state}",
            "-o",
            f"Dir::State::status={state / 'status'}",
            "-o",
            f"Dir::Cache={self.root / 'cache'}",
            "-o",
            f"Dir::Etc::SourceList={self.root / 'sources.list'}",
            "-o",
            "Dir::Etc::SourceParts=/nonexistent",
            "-o",
            "Debug::NoLocking=1",
            # Downloads land in a root-owned folder; the _apt sandbox user cannot write there.
            "-o",
            "APT::Sandbox::User=root",
        ]

    def prepare(self) -> None:
        for sub in ("state/lists/partial", "cache/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "state" / "status").touch()
        (self.root / "sources.list").write_text(sources_list(self.arch))
        log.info("apt-get update (%s)", self.arch)
        try:
            run(["apt-get", *self.options(), "-q", "update"])
        except BuildError as err:
            # A mirror caught mid-sync serves one index of the wrong size
            # (seen here: bookworm-security's armhf Packages.xz). With the
            # main suite's index in hand the build can go on, from older
            # packages where security has newer ones; it says so.
            lists = self.root / "state" / "lists"
            if not any(lists.glob(f"*_dists_bookworm_main_binary-{self.arch}_Packages*")):
                raise
            log.warning("WARNING: %s; building from the indexes apt has (main suite)", err)

    def download(self, packages: list[str], dest: Path) -> dict[str, Path]:
        """Download each named package (no dependency resolution) into dest."""
        dest.mkdir(parents=True, exist_ok=True)
        log.info("apt-get download %s", " ".join(packages))
        run(["apt-get", *self.options(), "-q", "download", *packages], cwd=dest)
        found: dict[str, Path] = {}
        for deb in dest.glob("*.deb"):
            name = deb.name.split("_", 1)[0]
            if name in packages:
                found[name] = deb
        missing = sorted(set(packages) - set(found))
        if missing:
            raise RuntimeError(f"apt-get download did not produce: {', '.join(missing)}")
        return found

    def resolve(self, package: str) -> str:
        """Name of the package a metapackage depends on first (e.g. the real kernel)."""
        out = run(["apt-cache", *self.options(), "depends", package]).decode()
        for raw in out.splitlines():
            line = raw.strip()
            if line.startswith("Depends:"):
                return line.split(":", 1)[1].strip()
        return package


def extract(deb: Path, into: Path) -> None:
    """Unpack a .deb's data into a directory (no maintainer scripts run)."""
    into.mkdir(parents=True, exist_ok=True)
    run(["dpkg-deb", "-x", deb, into])
