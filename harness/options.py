"""The harness's pytest options, and the one precedence rule they share:
marker > command line > environment variable > ini file > default."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

DEFAULT_TARGET = "qemu-arm64-uboot"


@dataclass(frozen=True)
class Opt:
    dest: str
    flag: str
    env: str
    ini: str
    default: str | None
    help: str


OPTIONS = (
    Opt(
        "ab_target",
        "--ab-target",
        "AB_TARGET",
        "ab_target",
        DEFAULT_TARGET,
        "target name (targets/NAME.yaml) or path to a target YAML",
    ),
    Opt(
        "ab_accel",
        "--ab-accel",
        "AB_ACCEL",
        "ab_accel",
        "auto",
        "QEMU accelerator: auto (try KVM, fall back to TCG), kvm, tcg",
    ),
    Opt(
        "ab_results",
        "--ab-results",
        "AB_RESULTS",
        "ab_results",
        "ab-results",
        "directory for per-test evidence (serial logs, env snapshots, timeline)",
    ),
    Opt(
        "ab_keep_runs",
        "--ab-keep-runs",
        "AB_KEEP_RUNS",
        "ab_keep_runs",
        "10",
        "run folders to keep under the results folder (older ones are removed)",
    ),
    Opt(
        "ab_cache",
        "--ab-cache",
        "AB_CACHE_DIR",
        "ab_cache",
        None,
        "image cache directory (default ~/.cache/ab-harness)",
    ),
    Opt(
        "ab_sweep",
        "--ab-sweep",
        "AB_SWEEP",
        "ab_sweep",
        None,
        "run the crash-point sweep scenario: quick (~10 crash states) or full",
    ),
    Opt(
        "ab_boot_timeout",
        "--ab-boot-timeout",
        "AB_BOOT_TIMEOUT",
        "ab_boot_timeout",
        None,
        "seconds one boot may take before the device counts as hung",
    ),
)


def option(config: pytest.Config, name: str, node: pytest.Item | None = None) -> str | None:
    """Resolve an ab option: marker > command line > environment > ini > default."""
    opt = next(o for o in OPTIONS if o.dest == name)
    if node is not None:
        marker = node.get_closest_marker(name)
        if marker is not None and marker.args:
            return str(marker.args[0])
    value = config.getoption(opt.dest)
    if value is None:
        value = os.environ.get(opt.env) or None
    if value is None:
        value = config.getini(opt.ini) or None
    return value if value is not None else opt.default
