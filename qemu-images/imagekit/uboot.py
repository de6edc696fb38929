"""U-Boot built from Debian's `u-boot` source package with Mender's options, cached.

Why not Debian's binary `u-boot-qemu`: it lacks CONFIG_BOOTCOUNT_LIMIT and
keeps its env in flash, so on it a boot script has to re-implement the count,
the limit and the saves. A board running Mender runs U-Boot's own C code for
those (bootcount_env, the redundant env driver), with its env at raw offsets
of its boot medium. This builds that U-Boot for QEMU `virt`: Debian's source
(its patches applied), a defconfig plus a Kconfig fragment, a compiled-in
default env, and the recipe's own patches, with Debian's cross compiler.

The source comes through a private apt configuration holding only `deb-src`
lines (beside the recipe's binary one, same mirror), so the host's apt is
untouched. A build takes minutes of CPU, so the result is cached by what
decides it (source version, fragment, env, patches, compiler, this file's
build steps) under `<cache>/<key>/`, and built once even when two image
builds need it at once. Progress is reported as objects compiled.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imagekit.debs import KEYRING, AptRoot
from imagekit.kernel import compiler_version, fragment_lines
from imagekit.makeprogress import MakeRun, make_with_progress
from imagekit.run import BuildError, need, run

log = logging.getLogger(__name__)

# Part of the cache key: bump it when the build steps below change what they
# produce (editing messages or checks must not cost a rebuild).
BUILD_STEPS_VERSION = "1"
# The host tools a build runs, and the Debian package of each (for the error).
BUILD_TOOLS = {
    "apt-get": "apt",
    "dpkg-source": "dpkg-dev",
    "dpkg-parsechangelog": "dpkg-dev",
    "patch": "patch",
    "make": "make",
    "gcc": "gcc",
    "bison": "bison",
    "flex": "flex",
    "xxd": "xxd",  # turns DEFAULT_ENV_FILE into a C array
}
# The build compiles U-Boot's host tools (mkimage) too, against OpenSSL.
OPENSSL_HEADER = Path("/usr/include/openssl/evp.h")
# The default env file inside the source tree (CONFIG_DEFAULT_ENV_FILE is
# relative to it, so no temporary path ends up in the cached .config).
ENV_IN_TREE = "ab-harness-default-env.txt"
# Objects a qemu_arm64 build compiles (measured on 2023.01); only for the
# progress lines' "of about N", the real count is logged at the end.
EXPECTED_OBJECTS = 415
BUILD_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class UBootBuild:
    """What to build (the recipe's U-Boot)."""

    source_package: str  # Debian source package, e.g. "u-boot" or "u-boot=2023.01+dfsg-2+deb12u3"
    defconfig: str  # e.g. "qemu_arm64_defconfig"
    config: Path  # Kconfig fragment applied over the defconfig
    env: Path  # the compiled-in default env (mkenvimage's text format)
    patches: tuple[Path, ...] = field(default=())  # applied after Debian's own, in order
    cross_compile: str = "aarch64-linux-gnu-"  # CROSS_COMPILE= prefix of Debian's cross gcc

    @classmethod
    def from_folder(
        cls,
        folder: Path,
        defconfig: str = "qemu_arm64_defconfig",
        source_package: str = "u-boot",
        cross_compile: str = "aarch64-linux-gnu-",
    ) -> UBootBuild:
        """A recipe folder's U-Boot: its uboot.config, uboot-env.txt and
        uboot-*.patch files (applied in name order)."""
        return cls(
            source_package=source_package,
            defconfig=defconfig,
            config=folder / "uboot.config",
            env=folder / "uboot-env.txt",
            patches=tuple(sorted(folder.glob("uboot-*.patch"))),
            cross_compile=cross_compile,
        )


def config_of(uboot_bin: Path) -> Path:
    """The .config a cached `u-boot.bin` was built with (beside it)."""
    return uboot_bin.parent / "config"


def build_info_of(uboot_bin: Path) -> dict[str, object]:
    """What the build of a cached `u-boot.bin` measured (source, seconds, load, objects)."""
    data: dict[str, object] = json.loads((uboot_bin.parent / "build.json").read_text())
    return data


def read_env_text(path: Path) -> dict[str, str]:
    """The variables of an env text file as U-Boot's build reads DEFAULT_ENV_FILE:
    lines starting with # and blank lines dropped, a backslash at the end of a
    line joins the next one (its leading blanks dropped), one name=value a line."""
    joined = re.sub(
        r"\\\n\s*",
        "",
        "\n".join(
            line for line in path.read_text().splitlines() if line and not line.startswith("#")
        ),
    )
    env: dict[str, str] = {}
    for line in joined.splitlines():
        name, sep, value = line.partition("=")
        if not sep:
            raise BuildError(f"{path}: '{line[:40]}' is not name=value — fix: edit that line")
        env[name] = value
    return env


def build_uboot(
    build: UBootBuild,
    apt: AptRoot,
    pool: Path,
    cache: Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The path of the cached `u-boot.bin` for `build`, built now (under a lock) if absent.

    `apt` is the recipe's binary apt root: the source lists live beside it.
    `pool` receives the source package's files; `cache` is the folder of
    U-Boot builds (e.g. ~/.cache/ab-harness/uboot). `progress` gets the
    build's progress lines (default: this module's log).
    """
    say = progress or (lambda line: log.info("%s", line))
    for tool, package in (*BUILD_TOOLS.items(), (f"{build.cross_compile}gcc", "")):
        _need(tool, package)
    if not OPENSSL_HEADER.is_file():
        raise BuildError(
            f"u-boot: {OPENSSL_HEADER} is missing (the build's host tools link OpenSSL)"
            " — fix: apt-get install libssl-dev (or run 'make setup')"
        )
    for path in (build.config, build.env, *build.patches):
        if not path.is_file():
            raise BuildError(f"u-boot: {path} is missing — fix: restore it from the repository")
    sources = SourceApt(apt.root.parent / "apt-source")
    dsc = sources.fetch(build.source_package, pool / "source")
    key = cache_key(build, dsc)
    out = cache / key
    uboot_bin = out / "u-boot.bin"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if uboot_bin.is_file() and config_of(uboot_bin).is_file():
            log.info("u-boot %s: cached (%s)", key, out)
            return uboot_bin
        say(f"u-boot {key}: building {dsc.name} ({build.defconfig}; a few CPU-minutes, once)")
        with tempfile.TemporaryDirectory(prefix="ab-uboot-", dir=cache) as tmp:
            _compile(build, dsc, Path(tmp), out, say)
    return uboot_bin


def cache_key(build: UBootBuild, dsc: Path) -> str:
    digest = hashlib.sha256()
    parts = [
        dsc.name,  # source package and Debian version
        build.defconfig,
        build.config.read_text(),
        build.env.read_text(),
        *(f"{patch.name}\0{patch.read_text()}" for patch in build.patches),
        build.cross_compile,
        compiler_version(build.cross_compile),
        BUILD_STEPS_VERSION,
    ]
    for part in parts:
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def check_config(config: Path, fragment: list[str]) -> None:
    """Every setting of the fragment must survive `olddefconfig`: Kconfig drops a
    symbol whose dependencies are off without a word, and the U-Boot then lacks
    what Mender needs (a bootcount, an env on the SD card). Fail naming it."""
    have = set(config.read_text().splitlines())
    for line in fragment:
        if line.startswith("#") or line.endswith("=n"):
            name = line.split("=")[0] if "=" in line else line.split()[1]
            if f"{name}=y" in have:
                raise BuildError(
                    f"u-boot config: {name} is still enabled though the fragment disables it"
                    " — fix: disable what selects it in the recipe's uboot.config"
                )
        elif line not in have:
            name = line.split("=")[0]
            got = next((h for h in have if h.startswith(f"{name}=")), "not set")
            raise BuildError(
                f"u-boot config: {line} did not take (the build has {got};"
                f" a dependency of {name} is off or it is not a Kconfig symbol)"
                " — fix: add the missing dependency to the recipe's uboot.config"
            )


@dataclass(frozen=True)
class SourceApt:
    """A private apt configuration that knows Debian's source packages only."""

    root: Path

    def options(self) -> list[str]:
        state = self.root / "state"
        return [
            "-o",
            f"Dir::State={state}",
            "-o",
            f"Dir::State::Lists={state / 'lists'}",
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
            "-o",
            "APT::Sandbox::User=root",
        ]

    def update(self) -> None:
        for sub in ("state/lists/partial", "cache/archives/partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "state" / "status").touch()
        (self.root / "sources.list").write_text(source_list())
        try:
            run(["apt-get", *self.options(), "-q", "update"])
        except BuildError as err:
            # Offline, or a mirror mid-sync: the lists of an earlier run still
            # name the version (and the cache holds its build); say so.
            if not any((self.root / "state" / "lists").glob("*_Sources*")):
                raise
            log.warning("WARNING: %s; using the source lists apt has", err)

    def fetch(self, package: str, dest: Path) -> Path:
        """The .dsc of `package` in dest, with its tarballs; downloaded if absent."""
        self.update()
        dest.mkdir(parents=True, exist_ok=True)
        # Asked where no source file lies (apt lists only what it would fetch).
        query = ["apt-get", *self.options(), "-q", "source", "--print-uris", package]
        uris = run(query, cwd=self.root).decode()
        files = [line.split()[1] for line in uris.splitlines() if line.startswith("'")]
        dsc = next((name for name in files if name.endswith(".dsc")), None)
        if dsc is None:
            raise BuildError(
                f"apt-get source {package}: no .dsc among {files or 'no files'}"
                " — fix: check the deb-src mirror (AB_DEBIAN_MIRROR) and the package name"
            )
        # Files already in dest are checked against the index's hashes, not fetched again.
        run(["apt-get", *self.options(), "-q", "source", "--download-only", package], cwd=dest)
        return dest / dsc


def source_list() -> str:
    """deb-src lines for bookworm, from the mirror the binary packages come from
    (imagekit.debs.sources_list: AB_DEBIAN_MIRROR, AB_DEBIAN_SECURITY_MIRROR)."""
    main = os.environ.get("AB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
    security = os.environ.get("AB_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    return (
        f"deb-src [signed-by={KEYRING}] {main} bookworm main\n"
        f"deb-src [signed-by={KEYRING}] {security} bookworm-security main\n"
    )


def _need(tool: str, package: str) -> None:
    try:
        need(tool)
    except BuildError:
        fix = package or tool
        raise BuildError(
            f"'{tool}' is not installed — fix: apt-get install {fix} (or run 'make setup')"
        ) from None


def _compile(
    build: UBootBuild, dsc: Path, tmp: Path, out: Path, say: Callable[[str], None]
) -> None:
    started = time.monotonic()
    tree = tmp / "src"
    # dpkg-source applies Debian's patch series (security fixes included);
    # the archive's signed Sources index already vouched for the files' hashes.
    run(["dpkg-source", "--no-check", "-x", dsc, tree], timeout_s=900)
    for patch in build.patches:
        run(["patch", "-p1", "--forward", "--batch", "-i", patch.resolve()], cwd=tree)
    shutil.copyfile(build.env, tree / ENV_IN_TREE)
    stamp = run(["dpkg-parsechangelog", "-l", tree / "debian" / "changelog", "-STimestamp"])
    env = {
        **os.environ,
        "CROSS_COMPILE": build.cross_compile,
        # Same inputs, same bytes: the banner's date is the Debian upload's.
        "SOURCE_DATE_EPOCH": stamp.decode().strip(),
        "LC_ALL": "C",
    }
    fragment = [*fragment_lines(build.config), f'CONFIG_DEFAULT_ENV_FILE="{ENV_IN_TREE}"']
    run(["make", "-s", build.defconfig], cwd=tree, env=env)
    with (tree / ".config").open("a") as config:
        config.write("\n" + "\n".join(fragment) + "\n")
    run(["make", "-s", "olddefconfig"], cwd=tree, env=env)
    check_config(tree / ".config", fragment)
    jobs = (os.cpu_count() or 1) + 1
    make = MakeRun("u-boot", EXPECTED_OBJECTS, BUILD_TIMEOUT_S)
    objects = make_with_progress(make, ["make", f"-j{jobs}", "u-boot.bin"], tree, env, say)
    seconds = time.monotonic() - started
    loads = make.loads
    info = {
        "source": dsc.name,
        "defconfig": build.defconfig,
        "compiler": compiler_version(build.cross_compile),
        "seconds": round(seconds, 1),
        "objects": objects,
        "cpus": os.cpu_count(),
        "load_1min_min": min(loads),
        "load_1min_max": max(loads),
        "load_1min_mean": round(sum(loads) / len(loads), 2),
    }
    say(
        f"u-boot: built in {seconds:.0f} s wall ({objects} objects, -j{jobs} on"
        f" {os.cpu_count()} CPUs, load {min(loads):.1f}-{max(loads):.1f})"
    )
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    shutil.copy2(tree / "u-boot.bin", partial / "u-boot.bin")
    shutil.copy2(tree / ".config", partial / "config")
    shutil.copy2(build.env, partial / "default-env.txt")
    (partial / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
