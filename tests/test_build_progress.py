"""Image build progress a person can follow, and quiet for CI: the filter on
a real build's lines (the reference recipe's own [n/N] step lines)."""

from __future__ import annotations

import re

import pytest

from harness.images.build_progress import build_progress, default_mode

BUILD = [
    "building image 'arm64-uboot' into /c/images/arm64-uboot-1234",
    "[1/8] fetching Debian arm64 packages (kernels, busybox-static, libubootenv)",
    "Get:1 http://deb.example/debian bookworm/main arm64 busybox-static 1:1.35.0-4+b3",
    "mke2fs 1.47.0 (5-Feb-2023)",
    "[2/8] building initramfs (busybox + virtio/vfat modules)",
    "    kernel: compiled 600 of about 1000 objects (60%)",
    "  CC      drivers/mmc/core/core.o",
    "    kernel: built in 412 s wall (1043 objects, -j3 on 2 CPUs, load 2.1-3.4)",
    "image 'arm64-uboot' ready: /c/images/arm64-uboot-1234",
]


def text(lines: list[str]) -> list[str]:
    return [re.sub(r"^ *\d+\.\d s  ", "", line) for line in lines]


def shown(mode: str | None) -> list[str]:
    ticks = iter(range(100))
    out: list[str] = []
    progress = build_progress(out.append, mode, clock=lambda: float(next(ticks)))  # type: ignore[arg-type]
    for line in BUILD:
        progress(line)
    return out


def test_steps_mode_shows_harness_and_step_lines_with_time() -> None:
    out = shown("steps")
    assert text(out) == [BUILD[0], BUILD[1], BUILD[4], BUILD[5], BUILD[7], BUILD[8]]
    assert out[0].startswith("  0.0 s  building image")
    assert out[-1].endswith("ready: /c/images/arm64-uboot-1234")


def test_quiet_mode_shows_start_end_and_compile_progress_only() -> None:
    assert text(shown("quiet")) == [BUILD[0], BUILD[5], BUILD[7], BUILD[8]]


def test_full_mode_shows_everything() -> None:
    assert len(shown("full")) == len(BUILD)


def test_ci_defaults_to_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert default_mode() == "quiet"
    monkeypatch.setenv("CI", "false")
    assert default_mode() == "steps"
    monkeypatch.delenv("CI")
    assert default_mode() == "steps"
