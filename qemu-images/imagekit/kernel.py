"""A kernel built for the reference image from Debian's kernel source, cached.

Why not Debian's binary kernel: under TCG, Debian's cloud-arm64 kernel spends
about 0.8 s in its initcalls (tracing, crypto self-tests, BTF, two network
stacks) and its initramfs another 0.2 s loading the virtio and FAT modules it
builds as modules. The boot is the unit of cost of every test, so the
reference image boots a kernel configured for the machine it runs on:
`allnoconfig` plus a fragment (`kernel.config` beside the profile) that builds
in exactly what the image uses (virtio, ext4, FAT, PL011, PCIe hot-plug, the
i6300esb watchdog, virtio-net, xHCI + usb-storage), with no modules and so
no initramfs. It boots to init about twice as fast.

The source is Debian's `linux-source-6.1` package, compiled with Debian's
cross compiler. A build takes ~10 CPU-minutes, so the result is cached by
what decides it (source package version, fragment, compiler version, this
file) under the cache's `kernels/` folder, shared by every image that uses
the same kernel, and built once even when two image builds need it at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imagekit.debs import AptRoot, extract
from imagekit.makeprogress import MakeRun, make_with_progress
from imagekit.run import BuildError, need, run

log = logging.getLogger(__name__)

# Part of the cache key: bump it when the build steps below change what they
# produce (editing messages or checks must not cost a 10-minute rebuild).
BUILD_STEPS_VERSION = "1"
# The host tools a build runs (gcc builds Kbuild's own helpers).
BUILD_TOOLS = ("make", "gcc", "bc", "flex", "bison", "tar")
# Objects the arm64 reference configuration compiles (linux-source-6.1), only
# for the progress lines' "of about N"; the real count is said at the end.
EXPECTED_OBJECTS = 1000
BUILD_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class KernelBuild:
    """What to build (the profile's [kernel_build] table)."""

    source_package: str  # e.g. linux-source-6.1 (Architecture: all)
    config: Path  # Kconfig fragment applied over allnoconfig
    arch: str  # the kernel's ARCH=
    cross_compile: str  # CROSS_COMPILE= prefix of Debian's cross gcc
    target: str  # make target, found at arch/<arch>/boot/<target>


@dataclass(frozen=True)
class BuiltKernel:
    """A cached build: the boot image and the .config it was built with."""

    image: Path
    config: Path

    def enabled(self, symbol: str) -> bool:
        """Whether CONFIG_<symbol> is built in (=y)."""
        return f"CONFIG_{symbol}=y\n" in self.config.read_text()


def fragment_lines(config: Path) -> list[str]:
    """The fragment's settings (`CONFIG_X=...` and `# CONFIG_X is not set`)."""
    lines = []
    for raw in config.read_text().splitlines():
        line = raw.strip()
        if line.startswith("CONFIG_") or (line.startswith("# CONFIG_") and "is not set" in line):
            lines.append(line)
    return lines


def compiler_version(cross_compile: str) -> str:
    return run([f"{cross_compile}gcc", "--version"]).decode().splitlines()[0]


def cache_key(spec: KernelBuild, source_deb: Path) -> str:
    digest = hashlib.sha256()
    for part in (
        source_deb.name,
        spec.config.read_text(),
        spec.arch,
        spec.target,
        compiler_version(spec.cross_compile),
        BUILD_STEPS_VERSION,
    ):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:16]


def check_config(config: Path, fragment: list[str]) -> None:
    """Every setting of the fragment must survive `olddefconfig` (a symbol whose
    dependencies are missing is silently dropped, and the kernel then lacks a
    driver the image needs: fail at build time, naming it)."""
    have = set(config.read_text().splitlines())
    for line in fragment:
        if line.endswith("=n") or line.startswith("#"):
            name = line.split("=")[0] if "=" in line else line.split()[1]
            if f"{name}=y" in have or f"{name}=m" in have:
                raise BuildError(
                    f"kernel config: {name} is still enabled though the fragment disables it"
                )
        elif line not in have:
            name = line.split("=")[0]
            raise BuildError(
                f"kernel config: {line} did not take (a dependency of {name} is off)"
                " — fix: add the missing dependency to the profile's kernel.config"
            )


def build_kernel(
    spec: KernelBuild,
    apt: AptRoot,
    pool: Path,
    cache: Path,
    progress: Callable[[str], None] | None = None,
) -> BuiltKernel:
    """The kernel for `spec`, from the cache or built now (under a lock); `progress`
    gets the build's lines (default: this module's log)."""
    say = progress or (lambda line: log.info("%s", line))
    for tool in (*BUILD_TOOLS, f"{spec.cross_compile}gcc"):
        need(tool)  # a missing tool is one line naming its package, before any download
    deb = apt.download([spec.source_package], pool)[spec.source_package]
    key = cache_key(spec, deb)
    out = cache / f"{spec.arch}-{key}"
    built = BuiltKernel(out / spec.target, out / "config")
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".{spec.arch}-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if built.image.is_file() and built.config.is_file():
            log.info("kernel %s: cached (%s)", key, out)
            return built
        say(f"kernel {key}: building {deb.name} for {spec.arch} (about 10 CPU-minutes, once)")
        with tempfile.TemporaryDirectory(prefix="ab-kernel-", dir=cache) as tmp:
            _compile(spec, deb, Path(tmp), out, say)
    return built


def _compile(
    spec: KernelBuild, deb: Path, tmp: Path, out: Path, say: Callable[[str], None]
) -> None:
    started = time.monotonic()
    extract(deb, tmp / "deb")
    tarball = next((tmp / "deb" / "usr" / "src").glob("linux-source-*.tar.*"), None)
    if tarball is None:
        raise BuildError(f"{deb.name} holds no usr/src/linux-source-*.tar.*")
    (tmp / "src").mkdir()
    run(["tar", "-xf", tarball, "-C", tmp / "src"], timeout_s=900)
    shutil.rmtree(tmp / "deb")
    tree = next((tmp / "src").iterdir())
    env = {
        **os.environ,
        "ARCH": spec.arch,
        "CROSS_COMPILE": spec.cross_compile,
        # Same inputs, same bytes: no build date, user or host in the kernel.
        "KBUILD_BUILD_TIMESTAMP": "1970-01-01",
        "KBUILD_BUILD_USER": "ab-harness",
        "KBUILD_BUILD_HOST": "ab-harness",
    }
    fragment = fragment_lines(spec.config)
    run(["make", "-s", "allnoconfig"], cwd=tree, env=env)
    with (tree / ".config").open("a") as config:
        config.write("\n".join(fragment) + "\n")
    run(["make", "-s", "olddefconfig"], cwd=tree, env=env)
    check_config(tree / ".config", fragment)
    jobs = (os.cpu_count() or 1) + 1
    make = MakeRun("kernel", EXPECTED_OBJECTS, BUILD_TIMEOUT_S)
    objects = make_with_progress(make, ["make", f"-j{jobs}", spec.target], tree, env, say)
    say(
        f"kernel: built in {time.monotonic() - started:.0f} s wall ({objects} objects, -j{jobs}"
        f" on {os.cpu_count()} CPUs, load {min(make.loads):.1f}-{max(make.loads):.1f})"
    )
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    shutil.copy2(tree / "arch" / spec.arch / "boot" / spec.target, partial / spec.target)
    shutil.copy2(tree / ".config", partial / "config")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
