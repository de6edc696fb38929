"""The pytest plugin: options, markers and fixtures over the harness modules.

Option precedence, for every ab option: marker > command line > environment
variable > ini file > default.

Fixtures, in data-flow order:
  ab_target_spec → ab_image → target (labgrid) → booted (powered on, shell
  ready) → push / observe / shell → evidence (serial logs, env snapshots,
  timeline, Allure) and the end-of-run summary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.boot import BootSession
from harness.bootloader import Bootloader, bootloader_for
from harness.faults import FaultClock, Faults, Machine
from harness.faults.machine import partition_lookup
from harness.images import ImageSet, Payload, ensure_image
from harness.live import LiveTarget, live_target
from harness.observe import Observer
from harness.push import UsbKeyPusher
from harness.qmp import QmpChannel
from harness.report import Evidence, ScenarioSummary, safe_name, summary_table
from harness.shell import Shell
from harness.target import TargetSpec, load_target

log = logging.getLogger(__name__)

DEFAULT_TARGET = "qemu-arm64-uboot"


@dataclass(frozen=True)
class _Opt:
    dest: str
    flag: str
    env: str
    ini: str
    default: str | None
    help: str


OPTIONS = (
    _Opt(
        "ab_target",
        "--ab-target",
        "AB_TARGET",
        "ab_target",
        DEFAULT_TARGET,
        "target name (targets/NAME.yaml) or path to a target YAML",
    ),
    _Opt(
        "ab_accel",
        "--ab-accel",
        "AB_ACCEL",
        "ab_accel",
        "auto",
        "QEMU accelerator: auto (try KVM, fall back to TCG), kvm, tcg",
    ),
    _Opt(
        "ab_results",
        "--ab-results",
        "AB_RESULTS",
        "ab_results",
        "ab-results",
        "directory for per-test evidence (serial logs, env snapshots, timeline)",
    ),
    _Opt(
        "ab_cache",
        "--ab-cache",
        "AB_CACHE_DIR",
        "ab_cache",
        None,
        "image cache directory (default ~/.cache/ab-harness)",
    ),
    _Opt(
        "ab_boot_timeout",
        "--ab-boot-timeout",
        "AB_BOOT_TIMEOUT",
        "ab_boot_timeout",
        None,
        "seconds one boot may take before the device counts as hung",
    ),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ab-harness", "A/B update rollback harness")
    for opt in OPTIONS:
        group.addoption(opt.flag, dest=opt.dest, default=None, help=f"{opt.help} (env {opt.env})")
        parser.addini(opt.ini, help=opt.help, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ab_target(name): run this test on the named target")
    config.addinivalue_line("markers", "ab_boot_timeout(seconds): per-boot timeout for this test")
    config.addinivalue_line("markers", "qemu: boots a real QEMU guest")
    labgrid_plugin = config.pluginmanager.has_plugin("labgrid")
    if labgrid_plugin and not config.getoption("lg_env", default=None):
        raise pytest.UsageError(
            "ab-harness: labgrid's own pytest plugin is loaded and also defines a 'target' "
            "fixture — fix: run pytest with '-p no:labgrid' (ab-harness builds the labgrid "
            "environment from --ab-target itself)"
        )
    config.stash[_SUMMARY] = []


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


_SUMMARY = pytest.StashKey[list[ScenarioSummary]]()  # config: rows of the run summary
_ACCEL = pytest.StashKey[str]()  # config: the accelerator QEMU ran with, and why
_BOOTS = pytest.StashKey[int]()  # item: boots seen by the test
_OUTCOME = pytest.StashKey[str]()  # item: passed / failed / error / skipped


@pytest.fixture(scope="session")
def _ab_images() -> dict[str, ImageSet]:
    """Images built or found in this session, by recipe name."""
    return {}


@pytest.fixture
def ab_target_spec(request: pytest.FixtureRequest) -> TargetSpec:
    """The validated target description selected by marker/option."""
    name = option(request.config, "ab_target", request.node)
    assert name is not None
    return load_target(name)


@pytest.fixture
def ab_image(
    request: pytest.FixtureRequest, ab_target_spec: TargetSpec, _ab_images: dict[str, ImageSet]
) -> ImageSet | None:
    """The built reference image the target needs (built once, then cached)."""
    if ab_target_spec.image is None:
        return None
    if ab_target_spec.image not in _ab_images:
        cache = option(request.config, "ab_cache")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")

        def progress(line: str) -> None:
            if reporter is not None:
                reporter.write_line(f"[ab-harness] {line}")

        _ab_images[ab_target_spec.image] = ensure_image(
            ab_target_spec.image, cache=Path(cache) if cache else None, progress=progress
        )
    return _ab_images[ab_target_spec.image]


@pytest.fixture
def payloads(ab_image: ImageSet | None) -> dict[str, Payload]:
    """Update payloads of the target's image, by name (e.g. "v2", "v2-bad")."""
    if ab_image is None:
        pytest.skip("target has no image recipe, so no payloads")
    return ab_image.payloads


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """The evidence folder of this test."""
    root = Path(option(request.config, "ab_results") or "ab-results").resolve()
    return Evidence(root / safe_name(request.node.nodeid.replace("::", "-")))


@pytest.fixture
def bootloader(ab_target_spec: TargetSpec) -> Bootloader:
    return bootloader_for(ab_target_spec.bootloader, ab_target_spec.env)


@pytest.fixture
def _ab_live(
    request: pytest.FixtureRequest,
    ab_target_spec: TargetSpec,
    ab_image: ImageSet | None,
    evidence: Evidence,
    bootloader: Bootloader,
    tmp_path: Path,
) -> Iterator[LiveTarget]:
    timeout = option(request.config, "ab_boot_timeout", request.node)
    live: LiveTarget | None = None
    # The per-test disk copy is working state, not evidence: it lives in pytest's
    # tmp_path (kept for the last few runs), and the timeline says where.
    workdir = tmp_path / "target"
    try:
        with live_target(
            ab_target_spec,
            ab_image,
            workdir,
            bootloader,
            accel=option(request.config, "ab_accel", request.node),
            boot_timeout_s=float(timeout) if timeout else None,
        ) as live:
            yield live
    finally:
        if live is not None:
            qemu = live.qemu
            if qemu is not None and qemu.accel_choice is not None:
                choice = qemu.accel_choice
                request.config.stash[_ACCEL] = f"{choice.accel} ({choice.reason})"
            request.node.stash[_BOOTS] = len(live.watcher.history)
            evidence.keep_file(workdir / "labgrid-env.yaml")
            evidence.event(f"target work directory (disk image as left): {workdir}")
            evidence.finish(live.recorder, live.watcher.history)


@pytest.fixture
def ab_live(_ab_live: LiveTarget) -> LiveTarget:
    """The target before power-on, with its per-test disk image, strategy and
    boot history: for tests that prepare the disk before the first boot."""
    return _ab_live


@pytest.fixture
def target(_ab_live: LiveTarget) -> Any:
    """The labgrid Target built from the target YAML (QEMU or a physical board)."""
    return _ab_live.target


@pytest.fixture
def booted(_ab_live: LiveTarget, evidence: Evidence, observe: Observer) -> BootSession:
    """The device powered on and at a shell; reboots are followed boot by boot."""
    strategy = _ab_live.strategy
    with evidence.step("power on"):
        strategy.transition("shell")
    return BootSession(strategy, evidence)


@pytest.fixture
def shell(_ab_live: LiveTarget) -> Shell:
    """Commands on the device (valid while the device is at a shell)."""
    return Shell(_ab_live.target.get_driver("ShellDriver", activate=False))


@pytest.fixture
def observe(
    _ab_live: LiveTarget, bootloader: Bootloader, shell: Shell, evidence: Evidence
) -> Observer:
    """Read-only views of the device: env (host and device), booted slot, slots, data."""
    observer = Observer(_ab_live.spec, bootloader, shell, _ab_live.disk, on_env=evidence.record_env)
    if _ab_live.disk is not None:

        def snapshot(label: str) -> None:
            observer.env_host(label)

        evidence.snapshot_env = snapshot
    return observer


@pytest.fixture
def push(
    _ab_live: LiveTarget, booted: BootSession, shell: Shell, evidence: Evidence
) -> Iterator[UsbKeyPusher]:
    """Pushes payloads to the device (QEMU: hot-plugged virtio disk, the "USB key")."""
    qemu = _ab_live.qemu
    if qemu is None or qemu.qmp_socket is None:
        pytest.skip("this target has no QEMU to hot-plug a payload into")
    with QmpChannel.connect(qemu.qmp_socket) as qmp:
        yield UsbKeyPusher(qmp, shell, qemu.hotplug_port_ids, steps=evidence)


@pytest.fixture
def faults(
    request: pytest.FixtureRequest, _ab_live: LiveTarget, evidence: Evidence
) -> Iterator[Faults]:
    """Faults to inject (power cuts, I/O errors); each one's proof goes to the evidence,
    and one that did not fire fails the test ("fault not injected: ...")."""
    qemu = _ab_live.qemu
    if qemu is None:
        pytest.skip("this target has no QEMU to inject faults into")
    machine = Machine(
        qemu,
        BootSession(_ab_live.strategy, evidence).power_cut,
        _ab_live.disk,
        partition_lookup(_ab_live.disk, _ab_live.spec.slots),
    )
    injector = Faults(machine, FaultClock(evidence.started, evidence.directory, evidence.event))
    yield injector
    if request.node.stash.get(_OUTCOME, "passed") == "passed":
        injector.finish()
    else:  # the test failed already: keep the proofs, do not pile a second error on it
        with contextlib.suppress(Exception):
            injector.finish()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    decisive = report.when == "call" or (report.when == "setup" and report.outcome != "passed")
    if decisive and "_ab_live" in getattr(item, "fixturenames", ()):
        # pytest calls a failure outside the test body an error; so does the summary.
        failed_in_setup = report.when == "setup" and report.outcome == "failed"
        item.stash[_OUTCOME] = "error" if failed_in_setup else report.outcome
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    started = time.monotonic()
    result = yield
    if _OUTCOME in item.stash:
        item.config.stash[_SUMMARY].append(
            ScenarioSummary(
                item.nodeid.split("::")[-1],
                item.stash[_OUTCOME],
                item.stash.get(_BOOTS, 0),
                time.monotonic() - started,
            )
        )
    return result


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(_SUMMARY, [])
    lines = summary_table(rows, config.stash.get(_ACCEL, None))
    if lines:
        terminalreporter.section("ab-harness summary")
        for line in lines:
            terminalreporter.write_line(line)
