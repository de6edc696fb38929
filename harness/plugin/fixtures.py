"""The plugin's fixtures, in data-flow order:
ab_target_spec → ab_image → target (labgrid) → booted (powered on, shell
ready) → push / observe / shell / faults → evidence (serial logs, env
snapshots, timeline, Allure). What they share with the hooks (the run's
id, each test's boots) is in harness.plugin.state.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import allure
import pytest

from harness.bootloaders import Bootloader, bootloader_for
from harness.clients import UpdateClient, client_for, with_client
from harness.crashsweep.recording import Recording, record_update_cycle
from harness.crashsweep.sweep import SweepRun, sweep_target
from harness.delivery import delivery_kind
from harness.delivery.push import Pusher
from harness.device.boot import BootSession
from harness.device.console_log import LiveConsoleLog
from harness.device.live import LiveTarget, live_target
from harness.device.observe import Observer
from harness.device.pace import Pace
from harness.device.shell import Shell
from harness.envformat import EnvCorrupt
from harness.errors import HarnessError
from harness.faults import FaultClock, Faults, Machine
from harness.faults.injector import NEEDS_BLOCK_LAYER
from harness.faults.machine import partition_lookup
from harness.fieldcase import Bundle
from harness.fieldcase import fixtures as fieldcase
from harness.images import ImageSet, Payload, default_cache_dir, ensure_image
from harness.images.build_progress import build_progress
from harness.images.userreleases import release_payloads
from harness.judge.judgement import Violation, tally
from harness.judge.oracle import ContractViolation
from harness.labgrid_glue import coordinator_option, with_coordinator
from harness.options import option
from harness.plugin import state
from harness.plugin.runtargets import item_target
from harness.report import (
    Evidence,
    ScenarioSummary,
    safe_name,
)
from harness.report.junit_allure import record_target_properties
from harness.report.runs import open_run, parse_keep
from harness.report.summary import oracle_properties
from harness.targets.matrix import (
    capabilities,
    unmet,
)
from harness.targets.target import TargetSpec, load_target


@pytest.fixture
def ab_target_name(request: pytest.FixtureRequest) -> str:
    """The target this test runs on (a name of targets/NAME.yaml, or a path)."""
    name = item_target(request.node)
    assert name is not None
    return name


@pytest.fixture(scope="session")
def _ab_images(request: pytest.FixtureRequest) -> dict[str, ImageSet]:
    """Images built or found in this run (checked before it), by recipe name."""
    return request.config.stash.setdefault(state.IMAGES, {})


@pytest.fixture
def ab_target_spec(request: pytest.FixtureRequest, ab_target_name: str) -> TargetSpec:
    """The validated target description selected by marker/option (--lg-env, and
    --lg-coordinator for its labgrid options, when labgrid's plugin is loaded)."""
    client = option(request.config, "ab_client", request.node)
    spec = with_client(load_target(ab_target_name), client)
    return with_coordinator(spec, coordinator_option(request.config))


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
            ab_target_spec.image,
            cache=Path(cache) if cache else None,
            progress=build_progress(progress, state.progress_mode(request.config)),
        )
    return _ab_images[ab_target_spec.image]


@pytest.fixture
def slots(ab_target_spec: TargetSpec) -> dict[str, int]:
    """The target's slot map, slot name to partition number ({"A": 2, "B": 3} on
    the reference layout): scenarios name slots, the target says where they are."""
    return dict(ab_target_spec.slots)


@pytest.fixture
def payloads(
    request: pytest.FixtureRequest, ab_target_spec: TargetSpec, ab_image: ImageSet | None
) -> dict[str, Payload]:
    """Update payloads by name (e.g. "v2", "v2-bad"): the releases the target's
    YAML names (a missing bad one derived from the good one, harness.images.userreleases),
    else those of its image recipe."""
    spec = ab_target_spec
    if spec.releases:
        cache = option(request.config, "ab_cache")
        return release_payloads(
            spec.name,
            spec.releases,
            spec.device,
            spec.design,
            Path(cache) if cache else default_cache_dir(),
            pytest.skip,
        )
    if ab_image is None:
        pytest.skip(
            "target has no releases (ab-harness.releases) and no image recipe, so no payloads"
        )
    return ab_image.payloads


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Iterator[Evidence]:
    """The evidence folder of this test (its timeline is written at the end,
    also for tests that never power a target on)."""
    root = Path(option(request.config, "ab_results") or "ab-results").resolve()
    keep = parse_keep(option(request.config, "ab_keep_runs"))
    run = open_run(root, request.config.stash[state.RUN_ID], keep)
    folder = Evidence(
        run / safe_name(request.node.nodeid.replace("::", "-")), title=request.node.nodeid
    )
    yield folder
    if not folder.finished:
        folder.finish(None, ())
    request.node.user_properties.append(("evidence", str(folder.directory)))


@pytest.fixture(scope="session")
def _ab_recordings() -> dict[str, Recording]:
    """Update recordings made in this run, by target name."""
    return {}


@pytest.fixture
def update_recording(
    request: pytest.FixtureRequest,
    ab_target_spec: TargetSpec,
    ab_image: ImageSet | None,
    bootloader: Bootloader,
    _ab_recordings: dict[str, Recording],
    tmp_path_factory: pytest.TempPathFactory,
) -> Recording:
    """One update of the target (install, reboot, commit) with every disk write
    logged, made once per run and target."""
    if ab_image is None:
        pytest.skip("the target has no image recipe: nothing to record")
    if "qemu" not in capabilities(ab_target_spec):
        pytest.skip(f"{NEEDS_BLOCK_LAYER}: a write log is recorded under QEMU's disk")
    if ab_target_spec.name not in _ab_recordings:
        _ab_recordings[ab_target_spec.name] = record_update_cycle(
            ab_target_spec,
            ab_image,
            bootloader,
            tmp_path_factory.mktemp("recording"),
            accel=option(request.config, "ab_accel", request.node),
        )
    return _ab_recordings[ab_target_spec.name]


@pytest.fixture
def crash_sweep(
    request: pytest.FixtureRequest,
    ab_target_spec: TargetSpec,
    ab_image: ImageSet | None,
    bootloader: Bootloader,
    evidence: Evidence,
    tmp_path: Path,
) -> SweepRun:
    """The crash-point sweep of one update (--ab-sweep quick|full), its table
    written to the evidence folder and attached to the report."""
    mode = option(request.config, "ab_sweep", request.node)
    if mode not in ("quick", "full"):
        pytest.skip("crash-point sweep not requested (--ab-sweep quick|full)")
    if ab_image is None:
        pytest.skip("the target has no image recipe: nothing to record and replay")
    if "qemu" not in capabilities(ab_target_spec):
        pytest.skip(f"{NEEDS_BLOCK_LAYER}: crash states are replayed from QEMU's write log")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        evidence.event(line)
        if reporter is not None:
            reporter.write_line(f"[ab-harness sweep] {line}")

    run = sweep_target(
        ab_target_spec,
        ab_image,
        bootloader,
        mode,  # type: ignore[arg-type]
        tmp_path / "sweep",
        accel=option(request.config, "ab_accel", request.node),
        progress=progress,
        recording=request.getfixturevalue("update_recording"),
    )
    table = run.write(evidence.directory)
    allure.attach(
        table.read_text(), name="crash-point sweep", attachment_type=allure.attachment_type.TEXT
    )
    # The summary row: the sweep's boots, and both of its counts with their rates.
    request.node.stash[state.BOOTS] = run.report.boots
    request.node.stash[state.NOTE] = run.report.counts_line()
    progress(run.report.counts_line())
    return run


@pytest.fixture
def update_client(request: pytest.FixtureRequest, ab_target_spec: TargetSpec) -> UpdateClient:
    """The update client on the device (--ab-client, else the target's `update_client`)."""
    return client_for(ab_target_spec.update_client)


@pytest.fixture
def bootloader(ab_target_spec: TargetSpec) -> Bootloader:
    """The target's bootloader contract: where its env lives, how to read it, its markers."""
    return bootloader_for(ab_target_spec.bootloader, ab_target_spec.env)


@pytest.fixture
def _ab_live(
    request: pytest.FixtureRequest,
    ab_target_spec: TargetSpec,
    ab_image: ImageSet | None,
    evidence: Evidence,
    bootloader: Bootloader,
    update_client: UpdateClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveTarget]:
    timeout = option(request.config, "ab_boot_timeout", request.node)
    live: LiveTarget | None = None
    live_log: LiveConsoleLog | None = None
    late: list[Violation] = []
    # The per-test disk copy is working state, not evidence: it lives under
    # pytest's basetemp (kept for the last few runs), and the timeline says where.
    # Not in `tmp_path`: its teardown raises KeyError after a Ctrl-C during setup.
    tmp_path = tmp_path_factory.mktemp(re.sub(r"\W", "_", request.node.name)[:30])
    workdir = tmp_path / "target"
    # A scenario that starts from a field bundle boots a disk rebuilt from it.
    disk = fieldcase.bundle_disk(request, ab_target_spec, ab_image, bootloader, tmp_path)
    try:
        with (
            live_target(
                ab_target_spec,
                ab_image,
                workdir,
                bootloader,
                accel=option(request.config, "ab_accel", request.node),
                boot_timeout_s=float(timeout) if timeout else None,
                judge=request.node.get_closest_marker("ab_no_oracle") is None,
                disk=disk,
                pace=_pace(request, ab_target_spec),
            ) as live,
            request.config.stash[state.INTERRUPTS].holding(live.qemu),
        ):
            live_log = LiveConsoleLog(live.recorder, evidence.directory)
            live.console_hooks.insert(0, live_log)  # logs on disk as the console talks
            yield live
    finally:
        if live_log is not None:
            live_log.close()
        if live is not None:
            qemu = live.qemu
            if qemu is not None and qemu.accel_choice is not None:
                choice = qemu.accel_choice
                request.config.stash[state.ACCEL] = f"{choice.accel} ({choice.reason})"
            request.node.stash[state.BOOTS] = len(live.watcher.history)
            # Until its teardown report carries the row, the test counts as
            # interrupted: a Ctrl-C or SIGTERM run still gets its summary.
            request.config.stash.setdefault(state.UNREPORTED, {})[request.node.nodeid] = (
                ScenarioSummary(
                    request.node.nodeid.split("::")[-1],
                    "interrupted",
                    len(live.watcher.history),
                    time.monotonic() - request.node.stash.get(state.STARTED, time.monotonic()),
                )
            )
            late = _judge_the_rest(request.node, live, evidence)
            evidence.keep_file(workdir / "labgrid-env.yaml")
            evidence.event(f"target work directory (disk image as left): {workdir}")
            interrupted = request.config.stash[state.INTERRUPTS].interrupted
            evidence.finish(live.recorder, live.watcher.history, png=not interrupted)
            # After the evidence is safe.
            record_target_properties(request.node, live, ab_image, evidence, update_client.name)
    if late and request.node.get_closest_marker("ab_no_oracle") is None:
        raise ContractViolation(late)


def _pace(request: pytest.FixtureRequest, spec: TargetSpec) -> Pace:
    """The target's pace in this process (an image's boots on this run set
    the deadlines of its next ones), or fixed deadlines (--ab-pace fixed)."""
    if option(request.config, "ab_pace", request.node) == "fixed":
        return Pace.fixed()
    return request.config.stash.setdefault(state.PACES, {}).setdefault(
        f"{spec.name}:{spec.image}", Pace()
    )


def _judge_the_rest(node: pytest.Item, live: LiveTarget, evidence: Evidence) -> list[Violation]:
    """Judge the boots the test left unjudged (one cut short at its end, the
    one it ended in) and put the test's oracle counts on its report; the
    violations found only now are returned, to fail the test's teardown."""
    try:
        settled = live.watcher.settle()
    except (HarnessError, OSError) as err:  # the test's own result comes first
        evidence.event(f"oracle: the boots left could not be judged: {err}")
        settled = []
    late = [j.violation for j in settled if j.violation is not None]
    judgements = [b.judgement for b in live.watcher.history]
    node.user_properties.extend(oracle_properties(judgements))
    if any(j is not None for j in judgements):
        evidence.event(f"oracle: {tally([j for j in judgements if j]).line()}")
    return late


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
    qemu = _ab_live.qemu
    return Shell(
        _ab_live.target.get_driver("ShellDriver", activate=False),
        qemu.explain_stall if qemu is not None else None,
        _ab_live.pace,
    )


@pytest.fixture
def observe(
    _ab_live: LiveTarget,
    bootloader: Bootloader,
    shell: Shell,
    evidence: Evidence,
    update_client: UpdateClient,
) -> Observer:
    """Views of the device: env (host and device), booted slot, slots, data, and
    what the update client believes (whose probe may be the client's own commit)."""
    observer = Observer(
        _ab_live.spec,
        bootloader,
        shell,
        _ab_live.disk,
        on_env=evidence.record_env,
        client_state=update_client.data_state,
        client=update_client,
    )
    if _ab_live.disk is not None:

        def snapshot(label: str) -> None:
            try:
                observer.env_host(label)
            except EnvCorrupt as err:  # a state the test may have made on purpose
                evidence.event(f"env snapshot '{label}': no valid env copy ({err.cause})")

        evidence.snapshot_env = snapshot
    return observer


@pytest.fixture
def push(
    _ab_live: LiveTarget,
    booted: BootSession,
    shell: Shell,
    evidence: Evidence,
    update_client: UpdateClient,
) -> Iterator[Pusher]:
    """Pushes payloads to the device through the target's delivery (`ab-harness.delivery`:
    QEMU hot-plug, the "USB key", by default; or a network pull) and installs them."""
    spec = _ab_live.spec
    if spec.delivery is None:
        pytest.skip(
            f"target {spec.name} names no delivery for payloads "
            "(ab-harness.delivery: network, for a board on a network)"
        )
    kind = delivery_kind(spec.delivery)
    why = unmet(spec, sorted(kind.needs))
    if why:
        pytest.skip(f"delivery '{kind.name}' cannot work here: {why}")
    with kind.open(_ab_live, shell, spec.delivery_options) as delivery:
        yield Pusher(delivery, shell, steps=evidence, client=update_client)


@pytest.fixture
def faults(
    request: pytest.FixtureRequest,
    _ab_live: LiveTarget,
    evidence: Evidence,
    bootloader: Bootloader,
    update_client: UpdateClient,
) -> Iterator[Faults]:
    """Faults to inject (power cuts, I/O errors); each one's proof goes to the evidence,
    and one that did not fire fails the test ("fault not injected: ...")."""
    qemu = _ab_live.qemu
    # A board has no QEMU: its power cuts go through its power driver, and the
    # faults that need QEMU's block layer skip the test with that reason.
    machine = None
    if qemu is not None:
        machine = Machine(
            qemu,
            BootSession(_ab_live.strategy, evidence).power_cut,
            _ab_live.disk,
            partition_lookup(_ab_live.disk, _ab_live.spec.slots),
        )
    injector = Faults(
        machine,
        FaultClock(evidence.started, evidence.directory, evidence.event),
        live=_ab_live,
        bootloader=bootloader,
        client=update_client,
        unavailable=pytest.skip,
    )
    evidence.fault_proofs = lambda: [fault.proof() for fault in injector.injected]
    yield injector
    if request.node.stash.get(state.OUTCOME, "passed") == "passed":
        injector.finish()
    else:  # the test failed already: keep the proofs, do not pile a second error on it
        with contextlib.suppress(Exception):
            injector.finish()


@pytest.fixture
def field_capture(
    _ab_live: LiveTarget,
    ab_target_spec: TargetSpec,
    bootloader: Bootloader,
    update_client: UpdateClient,
    shell: Shell,
    evidence: Evidence,
) -> fieldcase.FieldCapture:
    """`field_capture(dest=None)` saves the running device's black box over its shell
    (env bytes, slots' sha256 and versions, client state, serial log) as a bundle
    folder (default: `bundle/` in the evidence folder) and returns the `Bundle`."""
    return fieldcase.FieldCapture(
        ab_target_spec, bootloader, update_client, shell, evidence, _ab_live.recorder
    )


@pytest.fixture
def field_bundle(request: pytest.FixtureRequest) -> Bundle:
    """The bundle this scenario starts from (`@pytest.mark.ab_from_bundle(PATH)`,
    PATH relative to the test file): the target booted a disk rebuilt from it."""
    return fieldcase.marked_bundle(request)
