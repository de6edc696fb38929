"""The harness's pytest options, and the one precedence rule they share:
marker > command line > environment variable > ini file > default.

Every value is checked where it is read (`option`), whichever of those
places it came from: a bad one (``--ab-boot-timeout abc``,
``AB_ACCEL=fast``) is a `HarnessConfigError` naming the option, the place
and the allowed values, which the plugin turns into one usage-error line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from harness.errors import HarnessConfigError

DEFAULT_TARGET = "qemu-arm64-uboot"

Check = Callable[[str], str | None]
"""Returns None if the value is good, else what is wrong with it."""


def _choice(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in allowed else f"must be one of: {', '.join(allowed)}"

    return check


def _positive_number(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return "must be a number of seconds, e.g. 120"
    if not math.isfinite(number) or number <= 0:
        return "must be a positive number of seconds"
    return None


def _count(value: str) -> str | None:
    return None if value.isdigit() else "must be a whole number, e.g. 10"


@dataclass(frozen=True)
class Opt:
    """One ``--ab-*`` option: where it is read from, its default and its check."""

    dest: str
    flag: str
    env: str
    ini: str
    default: str | None
    help: str
    check: Check | None = None
    shown_default: str | None = None
    """What `pytest --help` shows as the default when `default` is None."""

    def help_text(self) -> str:
        """The help line: meaning, default, environment variable."""
        default = self.default if self.default is not None else self.shown_default
        return f"{self.help} (default: {default or 'none'}) (env {self.env})"


OPTIONS = (
    Opt(
        "ab_target",
        "--ab-target",
        "AB_TARGET",
        "ab_target",
        DEFAULT_TARGET,
        "target name (targets/NAME.yaml), path to a target YAML, a comma list, or 'all'",
    ),
    Opt(
        "ab_accel",
        "--ab-accel",
        "AB_ACCEL",
        "ab_accel",
        "auto",
        "QEMU accelerator: auto (try KVM, fall back to TCG), kvm, tcg",
        _choice("auto", "kvm", "tcg"),
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
        "image cache directory",
        shown_default="~/.cache/ab-harness",
    ),
    Opt(
        "ab_sweep",
        "--ab-sweep",
        "AB_SWEEP",
        "ab_sweep",
        None,
        "run the crash-point sweep scenario: quick (~10 crash states) or full",
        _choice("quick", "full"),
        shown_default="off",
    ),
    Opt(
        "ab_client",
        "--ab-client",
        "AB_CLIENT",
        "ab_client",
        None,
        "update client on the device: ab-update (the reference agent) or mender "
        "(the real Mender client, in the image's Mender flavour)",
        shown_default="the target YAML's update_client",
    ),
    Opt(
        "ab_boot_timeout",
        "--ab-boot-timeout",
        "AB_BOOT_TIMEOUT",
        "ab_boot_timeout",
        None,
        "seconds one boot may take before the device counts as hung: the floor, "
        "which --ab-pace measured stretches on a busy or slow host",
        _positive_number,
        shown_default="the target's boot_timeout_s",
    ),
    Opt(
        "ab_pace",
        "--ab-pace",
        "AB_PACE",
        "ab_pace",
        "measured",
        "boot and command deadlines: measured (the fixed values scaled by this host's run "
        "queue and this target's fastest boot on this run, never below them) or fixed",
        _choice("measured", "fixed"),
    ),
    Opt(
        "ab_build_progress",
        "--ab-build-progress",
        "AB_BUILD_PROGRESS",
        "ab_build_progress",
        None,
        "image builds: 'steps' (one line per build step), 'quiet' (start and end only; "
        "CI), 'full' (every line of the recipe)",
        _choice("steps", "quiet", "full"),
        shown_default="steps (quiet when CI is set)",
    ),
)


def option(config: pytest.Config, name: str, node: pytest.Item | None = None) -> str | None:
    """Resolve an ab option: marker > command line > environment > ini > default.

    Raises `HarnessConfigError` naming the option and where the bad value came from.
    """
    opt = next(o for o in OPTIONS if o.dest == name)
    value: str | None = None
    source = ""
    if node is not None:
        marker = node.get_closest_marker(name)
        if marker is not None and marker.args:
            value, source = str(marker.args[0]), f"marker {name}"
    if value is None:
        value, source = config.getoption(opt.dest), opt.flag
    if value is None:
        value, source = os.environ.get(opt.env) or None, f"environment variable {opt.env}"
    if value is None:
        value, source = config.getini(opt.ini) or None, f"ini option {opt.ini}"
    if value is None:
        return opt.default
    validate(opt, str(value), source)
    return str(value)


def given(config: pytest.Config, name: str) -> str | None:
    """The option's value if the user set it (command line, environment, ini), else None."""
    opt = next(o for o in OPTIONS if o.dest == name)
    value = config.getoption(opt.dest) or os.environ.get(opt.env) or config.getini(opt.ini)
    return str(value) if value else None


def validate(opt: Opt, value: str, source: str) -> None:
    """Raise `HarnessConfigError` if `value` is not good for `opt`."""
    problem = opt.check(value) if opt.check is not None else None
    if problem is not None:
        raise HarnessConfigError(
            f"{opt.flag} is {value!r} (from {source}): it {problem}",
            f"give {opt.flag} a valid value or drop it to use the default",
        )


def check_all(config: pytest.Config) -> None:
    """Check every option's value once, at the start of the run (no markers yet)."""
    for opt in OPTIONS:
        option(config, opt.dest)
