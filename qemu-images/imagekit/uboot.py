"""U-Boot built from Debian's `u-boot` source package with Mender's options, cached.

Why not Debian's binary `u-boot-qemu`: it lacks CONFIG_BOOTCOUNT_LIMIT and
keeps its env in flash, so on it a boot script has to re-implement the count,
the limit and the saves. A board running Mender runs U-Boot's own C code for
those (bootcount_env, the redundant env driver), with the env at raw offsets
of its boot medium. This builds that U-Boot for QEMU `virt`.

(Build steps follow; this is the interface the image recipe codes against.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imagekit.debs import AptRoot


@dataclass(frozen=True)
class UBootBuild:
    """What to build (the recipe's U-Boot)."""

    source_package: str  # Debian source package, e.g. "u-boot" (bookworm: 2023.01)
    defconfig: str  # e.g. "qemu_arm64_defconfig"
    config: Path  # Kconfig fragment applied over the defconfig
    env: Path  # the compiled-in default env (one `name=value` a line)
    patches: tuple[Path, ...] = field(default=())  # applied after Debian's own
    cross_compile: str = "aarch64-linux-gnu-"  # CROSS_COMPILE= prefix of Debian's cross gcc


def build_uboot(build: UBootBuild, apt: AptRoot, pool: Path, cache: Path) -> Path:
    """The path of the cached `u-boot.bin` for `build`, built now if absent."""
    raise NotImplementedError("build_uboot: in progress")
