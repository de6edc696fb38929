"""Architecture profile: everything the U-Boot A/B recipe must know about a CPU.

The A/B design (disk layout, env contract, boot script logic, agent,
payloads) is the same on every architecture; what differs is data: the
Debian architecture of the packages, which U-Boot and kernel to take (a
Debian binary kernel, or one built from Debian's source by imagekit/kernel.py), how
U-Boot starts that kernel, which modules the initramfs needs, where the C
library lives in the guest and which QEMU machine runs it. A profile is a
TOML file beside the recipe that uses it (`qemu-images/arm64-uboot/
profile.toml`, `qemu-images/arm-uboot/profile.toml`), so a new architecture
is a new file, never a branch on its name in the recipe.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagekit.kernel import KernelBuild
from imagekit.run import BuildError


@dataclass(frozen=True)
class QemuMachine:
    """The QEMU that runs the image (recorded in its manifest for targets)."""

    system: str
    machine: str
    cpu: str


@dataclass(frozen=True)
class WatchdogKernel:
    """The kernel of the v2-hang payload: one that drives QEMU's i6300esb.

    It ships gzip'ed (`<kernel>.gz` in the payload's /boot), as a release
    may; an architecture whose kernels have no such driver has no v2-hang."""

    package: str
    initramfs_modules: tuple[str, ...]


@dataclass(frozen=True)
class ArchProfile:
    """One architecture's answers to the recipe's questions (see profile.toml)."""

    source: Path
    arch: str
    mkimage_arch: str
    uboot: Path
    factory_env_size: int
    kernel_package: str | None  # Debian's binary kernel, or None with kernel_build
    kernel_build: KernelBuild | None  # a kernel built from Debian's source (imagekit/kernel.py)
    kernel: str
    boot_command: str
    multiarch: str
    loader: str
    initramfs_modules: tuple[str, ...]
    qemu: QemuMachine
    watchdog: WatchdogKernel | None
    # Modules of a virtio NIC, in load order, kept in each slot's rootfs (not the
    # initramfs): the slot's init loads them only when the machine has a NIC, so
    # a target without one (the default) boots as fast as before. Empty: no network.
    network_modules: tuple[str, ...] = ()

    @property
    def guest_libs(self) -> tuple[str, ...]:
        """The dynamic loader and the libraries fw_printenv/fw_setenv need, guest paths."""
        return (
            f"lib/{self.multiarch}/{self.loader}",
            f"lib/{self.multiarch}/libc.so.6",
            f"lib/{self.multiarch}/libz.so.1.2.13",
            f"usr/lib/{self.multiarch}/libubootenv.so.0.3.2",
        )


class _Table:
    """A TOML table whose every read names the file and key when it is wrong."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self.used: set[str] = set()

    def fail(self, cause: str) -> BuildError:
        return BuildError(f"{self.where}: {cause} — fix: see qemu-images/arm64-uboot/profile.toml")

    def get(self, key: str, kind: type, default: Any = ...) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is not ...:
                return default
            raise self.fail(f"'{key}' is missing")
        value = self.data[key]
        wrong = not isinstance(value, kind)
        if not wrong and kind is list:
            wrong = not all(isinstance(v, str) for v in value)
        if wrong:
            raise self.fail(f"'{key}' must be a {kind.__name__} (of strings), not {value!r}")
        return value

    def table(self, key: str) -> _Table | None:
        self.used.add(key)
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(f"'{key}' must be a table")
        return _Table(value, f"{self.where} [{key}]")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.fail(f"unknown key(s) {', '.join(unknown)}")


def load_profile(path: Path) -> ArchProfile:
    """Read and check a profile; a bad one raises BuildError naming file and key."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise BuildError(f"architecture profile {path} cannot be read: {err}") from None
    top = _Table(data, str(path))
    qemu = top.table("qemu")
    if qemu is None:
        raise top.fail("the [qemu] table is missing")
    watchdog = top.table("watchdog")
    build = top.table("kernel_build")
    package = top.get("kernel_package", str) if "kernel_package" in top.data else None
    if (package is None) == (build is None):
        raise top.fail("give exactly one of 'kernel_package' and a [kernel_build] table")
    profile = ArchProfile(
        source=path,
        arch=top.get("arch", str),
        mkimage_arch=top.get("mkimage_arch", str),
        uboot=Path(top.get("uboot", str)),
        factory_env_size=top.get("factory_env_size", int),
        kernel_package=package,
        kernel_build=None
        if build is None
        else KernelBuild(
            source_package=build.get("source_package", str),
            config=path.parent / build.get("config", str),
            arch=build.get("arch", str),
            cross_compile=build.get("cross_compile", str),
            target=build.get("target", str),
        ),
        kernel=top.get("kernel", str),
        boot_command=top.get("boot_command", str),
        multiarch=top.get("multiarch", str),
        loader=top.get("loader", str),
        initramfs_modules=tuple(top.get("initramfs_modules", list)),
        network_modules=tuple(top.get("network_modules", list, [])),
        qemu=QemuMachine(qemu.get("system", str), qemu.get("machine", str), qemu.get("cpu", str)),
        watchdog=None
        if watchdog is None
        else WatchdogKernel(
            watchdog.get("kernel_package", str),
            tuple(watchdog.get("initramfs_modules", list)),
        ),
    )
    for table in (top, qemu, *([watchdog] if watchdog else []), *([build] if build else [])):
        table.done()
    if profile.kernel_build is not None and not profile.kernel_build.config.is_file():
        raise top.fail(f"[kernel_build] config {profile.kernel_build.config} does not exist")
    return profile
