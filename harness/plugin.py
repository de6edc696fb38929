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
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import allure
import pytest

from harness import findings, plugin_lab
from harness.boot import BootSession
from harness.bootloaders import Bootloader, bootloader_for
from harness.build_progress import Mode, build_progress
from harness.clients import UpdateClient, client_for, with_client
from harness.console_log import LiveConsoleLog
from harness.delivery import delivery_kind
from harness.envformat import EnvCorrupt
from harness.errors import HarnessError
from harness.faults import FaultClock, Faults, Machine
from harness.faults.injector import NEEDS_BLOCK_LAYER
from harness.faults.machine import partition_lookup
from harness.faults.recording import Recording, record_update_cycle
from harness.faults.sweep import SweepRun, sweep_target
from harness.fieldcase import Bundle
from harness.fieldcase import fixtures as fieldcase
from harness.images import ImageSet, Payload, default_cache_dir, ensure_image
from harness.interrupts import Interrupts
from harness.judgement import Violation, tally
from harness.labgrid_glue import coordinator_option, labgrid_env, with_coordinator
from harness.live import LiveTarget, live_target
from harness.machines.tempdirs import remove_stale_tempdirs
from harness.matrix import Cell, capabilities, matrix_table, scenario_of, target_names, unmet
from harness.observe import Observer
from harness.options import DEFAULT_TARGET, OPTIONS, option
from harness.oracle import ContractViolation
from harness.pace import Pace
from harness.plugin_lab import summary_outcome
from harness.preflight import preflight
from harness.push import Pusher
from harness.report import (
    Evidence,
    ScenarioSummary,
    check_results_folder,
    finish_run,
    safe_name,
    summary_table,
)
from harness.report.junit_allure import record_target_properties
from harness.report.runlog import RunLog
from harness.report.runs import new_run_id, open_run, parse_keep
from harness.report.summary import RunTotals, oracle_properties, oracle_summary
from harness.report.tally import RunTally, skip_reason
from harness.runtargets import item_target, run_targets
from harness.shell import Shell
from harness.target import TargetSpec, load_target
from harness.userreleases import release_payloads

log = logging.getLogger(__name__)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ab-harness", "A/B update rollback harness")
    for opt in OPTIONS:
        group.addoption(opt.flag, dest=opt.dest, default=None, help=opt.help_text())
        parser.addini(opt.ini, help=opt.help, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ab_target(name): run this test on the named target")
    config.addinivalue_line("markers", "ab_boot_timeout(seconds): per-boot timeout for this test")
    config.addinivalue_line(
        "markers", "ab_client(name): the update client this test drives (e.g. 'mender')"
    )
    config.addinivalue_line("markers", "qemu: boots a real QEMU guest")
    config.addinivalue_line(
        "markers",
        "ab_needs(*capabilities): skip on targets that lack one (e.g. 'watchdog', "
        "'bootlimit-n'), with the reason",
    )
    config.addinivalue_line(
        "markers", "nightly: a slower variant left to `make nightly` (`make test` deselects it)"
    )
    config.addinivalue_line(
        "markers",
        "ab_no_oracle: judge boots against the bootloader contract but do not fail on a "
        "violation (for tests that judge a deliberately broken bootloader themselves)",
    )
    config.addinivalue_line(
        "markers",
        "ab_finding(*ids, strict=True): a known finding (harness.findings) this test shows "
        "on the stacks it applies to: reported as that finding, not as a failure",
    )
    config.addinivalue_line("markers", fieldcase.MARKER_HELP)
    plugin_lab.configure(config)  # option values, --lg-env/LG_ENV, the lab check
    labgrid_plugin = config.pluginmanager.has_plugin("labgrid")
    if labgrid_plugin and labgrid_env(config) is None:
        raise pytest.UsageError(
            "ab-harness: labgrid's own pytest plugin is loaded and also defines a 'target' "
            "fixture — fix: run pytest with '-p no:labgrid' (ab-harness builds the labgrid "
            "environment from --ab-target itself)"
        )
    config.stash[_SUMMARY] = []
    config.stash[_TALLY] = RunTally()
    config.pluginmanager.register(_SummaryCollector(config), "ab-harness-summary")
    # One run folder for the whole run: the xdist controller picks the id.
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and "ab_run_id" in worker_input:
        config.stash[_RUN_ID] = worker_input["ab_run_id"]
    else:
        config.stash[_RUN_ID] = new_run_id()
    if worker_input is None:
        config.stash[_RUNLOG] = RunLog(config.stash[_RUN_ID])
        try:
            parse_keep(option(config, "ab_keep_runs"))
        except HarnessError as err:
            raise pytest.UsageError(f"ab-harness: {err}") from None
    remove_stale_tempdirs()
    # Ctrl-C and SIGTERM: QEMU killed at the signal, then teardown as usual.
    interrupts = config.stash[_INTERRUPTS] = Interrupts(config)
    config.pluginmanager.register(interrupts, "ab-harness-interrupts")
    interrupts.install()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker writes into the run folder the controller chose."""
    node.workerinput["ab_run_id"] = node.config.stash[_RUN_ID]


def pytest_unconfigure(config: pytest.Config) -> None:
    interrupts = config.stash.get(_INTERRUPTS, None)
    if interrupts is not None:
        interrupts.uninstall()


_INTERRUPTS = pytest.StashKey[Interrupts]()  # config: the SIGINT/SIGTERM handlers
_SUMMARY = pytest.StashKey[list[ScenarioSummary]]()  # config: rows of the run summary
_RUN_ID = pytest.StashKey[str]()  # config: this run's folder name under the results folder
_RUNLOG = pytest.StashKey[RunLog]()  # config (controller): every test of the run
_ACCEL = pytest.StashKey[str]()  # config: the accelerator QEMU ran with, and why
_BOOTS = pytest.StashKey[int]()  # item: boots seen by the test
_OUTCOME = pytest.StashKey[str]()  # item: passed / failed / error / skipped
_NOTE = pytest.StashKey[str]()  # item: what its summary row adds (a sweep's counts, a skip's why)
_TALLY = pytest.StashKey[RunTally]()  # config: every test of the run, counted once


_IMAGES = pytest.StashKey[dict[str, ImageSet]]()  # config: images checked in this run
_PACES = pytest.StashKey[dict[str, Pace]]()  # config: each target's pace in this process


def pytest_collection_finish(session: pytest.Session) -> None:
    """Check every target the collected tests use, once, before any test runs.

    A configuration error ends the run here as one ``ab-harness: ...`` line
    (a usage error), instead of a traceback in every test that uses it.
    Only targets that tests need are built and checked; an explicitly chosen
    --ab-target (option, env, ini) is always loaded, so a typo is never ignored.
    """
    config = session.config
    images = config.stash.setdefault(_IMAGES, {})
    if config.option.collectonly:
        return
    names = {item_target(item) for item in session.items}
    names.discard(None)
    explicit = option(config, "ab_target")
    cache = option(config, "ab_cache")
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def write(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[ab-harness] {line}")

    progress = build_progress(write, _progress_mode(config))
    try:
        client = option(config, "ab_client")
        if client is not None:
            client_for(client)  # a typo ends the run here, once
        if names:
            check_results_folder(Path(option(config, "ab_results") or "ab-results"))
        if explicit != DEFAULT_TARGET:
            for name in target_names(str(explicit)):
                if name not in names:
                    load_target(name)
        for name in sorted(n for n in names if n is not None):
            spec = with_client(load_target(name), client)
            image = preflight(spec, cache=Path(cache) if cache else None, progress=progress)
            if image is not None:
                images[image.name] = image
    except HarnessError as err:
        raise pytest.UsageError(f"ab-harness: {' '.join(str(err).split())}") from None


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Under pytest-xdist, check (and build) the targets --ab-target names in
    the controller, before any worker starts: a bad target is then one usage
    line, not a worker that ends mid-collection (pytest's INTERNALERROR), and
    two workers never wait on one image build."""
    config = session.config
    is_controller = getattr(config.option, "dist", "no") != "no" and not hasattr(
        config, "workerinput"
    )
    if not is_controller or config.option.collectonly:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def write(line: str) -> None:
        if reporter is not None:
            reporter.write_line(f"[ab-harness] {line}")

    cache = option(config, "ab_cache")
    progress = build_progress(write, _progress_mode(config))
    try:
        client = option(config, "ab_client")
        if client is not None:
            client_for(client)
        explicit = option(config, "ab_target") != DEFAULT_TARGET
        for name in run_targets(config):
            spec = with_client(load_target(name), client)
            if explicit:  # the default target's image is the one `make images` builds
                preflight(spec, cache=Path(cache) if cache else None, progress=progress)
    except HarnessError as err:
        raise pytest.UsageError(f"ab-harness: {' '.join(str(err).split())}") from None


def _progress_mode(config: pytest.Config) -> Mode | None:
    mode = option(config, "ab_build_progress")
    return mode if mode in ("steps", "quiet", "full") else None  # type: ignore[return-value]


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With more than one target, every test that uses one runs on each,
    the target first in its id (test_x[qemu-x86_64-grub-1])."""
    if "ab_target_name" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("ab_target") is not None:
        return
    names = run_targets(metafunc.config)
    if len(names) > 1:
        ids = [Path(n).stem for n in names]
        metafunc.parametrize("ab_target_name", names, ids=ids)


def _finding(item: pytest.Item, report: pytest.TestReport) -> bool:
    """Settle a test that names known findings (`ab_finding`) by the stack it ran on."""
    markers = list(item.iter_markers("ab_finding"))
    target = item_target(item)
    if not markers or target is None or report.when != "call":
        return False
    spec = load_target(target)
    client = option(item.config, "ab_client", item) or spec.update_client
    ids = [str(a) for m in markers for a in m.args]
    strict = all(m.kwargs.get("strict", True) for m in markers)
    stack = findings.Stack(spec.design, str(client), spec.bootloader)
    return findings.settle_report(report, ids, stack, strict)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, at collection, a scenario on a target that lacks what it needs."""
    specs: dict[str, TargetSpec | None] = {}
    for item in items:
        needs = [str(a) for m in item.iter_markers("ab_needs") for a in m.args]
        name = item_target(item)
        if not needs or name is None:
            continue
        if name not in specs:
            try:
                specs[name] = load_target(name)
            except HarnessError:  # reported once, before any test, by collection_finish
                specs[name] = None
        spec = specs[name]
        why = unmet(spec, needs) if spec is not None else None
        if why:
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture
def ab_target_name(request: pytest.FixtureRequest) -> str:
    """The target this test runs on (a name of targets/NAME.yaml, or a path)."""
    name = item_target(request.node)
    assert name is not None
    return name


@pytest.fixture(scope="session")
def _ab_images(request: pytest.FixtureRequest) -> dict[str, ImageSet]:
    """Images built or found in this run (checked before it), by recipe name."""
    return request.config.stash.setdefault(_IMAGES, {})


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
            progress=build_progress(progress, _progress_mode(request.config)),
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
    YAML names (a missing bad one derived from the good one, harness.userreleases),
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
    run = open_run(root, request.config.stash[_RUN_ID], keep)
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
    request.node.stash[_BOOTS] = run.report.boots
    request.node.stash[_NOTE] = run.report.counts_line()
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
            request.config.stash[_INTERRUPTS].holding(live.qemu),
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
                request.config.stash[_ACCEL] = f"{choice.accel} ({choice.reason})"
            request.node.stash[_BOOTS] = len(live.watcher.history)
            # Until its teardown report carries the row, the test counts as
            # interrupted: a Ctrl-C or SIGTERM run still gets its summary.
            request.config.stash.setdefault(_UNREPORTED, {})[request.node.nodeid] = ScenarioSummary(
                request.node.nodeid.split("::")[-1],
                "interrupted",
                len(live.watcher.history),
                time.monotonic() - request.node.stash.get(_STARTED, time.monotonic()),
            )
            late = _judge_the_rest(request.node, live, evidence)
            evidence.keep_file(workdir / "labgrid-env.yaml")
            evidence.event(f"target work directory (disk image as left): {workdir}")
            interrupted = request.config.stash[_INTERRUPTS].interrupted
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
    return request.config.stash.setdefault(_PACES, {}).setdefault(
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
    if request.node.stash.get(_OUTCOME, "passed") == "passed":
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


_STARTED = pytest.StashKey[float]()  # item: when its protocol began
_ROW = "ab_harness_summary_row"  # user property carrying a summary row (also across xdist)
_UNREPORTED = pytest.StashKey[dict[str, ScenarioSummary]]()  # config: torn down, not reported


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    shown = _finding(item, report)
    decisive = report.when == "call" or (report.when == "setup" and report.outcome != "passed")
    # A teardown that fails a passed test (a fault that never fired) makes it an error.
    late = report.when == "teardown" and report.failed and item.stash.get(_OUTCOME, "") == "passed"
    # Every test that uses a target gets a row in the summary and the matrix.
    summarised = item_target(item) is not None
    if (decisive or late) and summarised:
        # pytest calls a failure outside the test body an error; so does the summary;
        # the lab or the host failing it is "infra".
        item.stash[_OUTCOME] = "finding" if shown else summary_outcome(item, report, call)
        if item.stash[_OUTCOME] == "skipped":  # a lab skip ("infra") is said once, by the lab
            item.stash[_NOTE] = skip_reason(report)
    if report.when == "teardown" and _OUTCOME in item.stash:
        # The row rides on the report, so pytest-xdist brings it to the controller.
        target = item_target(item) or ""
        row = {
            "scenario": item.nodeid.split("::")[-1],
            "target": Path(target).stem,
            "target_name": target,
            "outcome": item.stash[_OUTCOME],
            "boots": item.stash.get(_BOOTS, 0),
            "seconds": time.monotonic() - item.stash.get(_STARTED, time.monotonic()),
            "accel": item.config.stash.get(_ACCEL, None),
            "note": item.stash.get(_NOTE, ""),
        }
        report.user_properties.append((_ROW, row))
        item.config.stash.setdefault(_UNREPORTED, {}).pop(item.nodeid, None)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Attach the boots to the report from the test body, where a reader
    looks for them (not under the teardown of a fixture). Not on Ctrl-C or
    SIGTERM: stopping QEMU comes first, and teardown still writes them."""
    try:
        result = yield
    except KeyboardInterrupt:
        raise
    except BaseException:
        _attach_boots(item)
        raise
    _attach_boots(item)
    return result


def _attach_boots(item: pytest.Item) -> None:
    funcargs = getattr(item, "funcargs", {})
    live, evidence = funcargs.get("_ab_live"), funcargs.get("evidence")
    if isinstance(live, LiveTarget) and isinstance(evidence, Evidence):
        evidence.attach_boots(live.recorder, live.watcher.history)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    item.stash[_STARTED] = time.monotonic()
    return (yield)


class _SummaryCollector:
    """Collects the summary rows from every report, wherever the test ran."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        runlog = self._config.stash.get(_RUNLOG, None)
        if runlog is not None:
            runlog.add_report(report, skip=_ROW)
        tally = self._config.stash[_TALLY]
        tally.add(report)
        for name, row in report.user_properties:
            if name == _ROW and isinstance(row, dict):
                tally.settle(report.nodeid, row["outcome"], row.get("target_name") or "")
                self._config.stash[_SUMMARY].append(
                    ScenarioSummary(
                        row["scenario"],
                        row["outcome"],
                        row["boots"],
                        row["seconds"],
                        row.get("target", ""),
                        row.get("note", ""),
                    )
                )
                if row.get("accel"):
                    self._config.stash[_ACCEL] = row["accel"]
        if runlog is not None:  # where reports end (not a worker): the row is no JUnit property
            report.user_properties = [p for p in report.user_properties if p[0] != _ROW]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Where every report arrived (not an xdist worker): run.json, report.html,
    the Allure environment and categories."""
    config = session.config
    runlog = config.stash.get(_RUNLOG, None)
    if runlog is not None:
        alluredir = getattr(config.option, "allure_report_dir", None)
        root = Path(option(config, "ab_results") or "ab-results").resolve()
        finish_run(root, runlog, Path(alluredir) if alluredir else None)
    _fail_untested(session)


def _fail_untested(session: pytest.Session) -> None:
    """A run that tested nothing on one of its targets (every test of it
    skipped) fails: exit status 1, pytest's TESTS_FAILED; the terminal
    summary names what the target lacks (`_untested_section`)."""
    config = session.config
    if config.stash.get(_RUNLOG, None) is None:  # an xdist worker: the controller decides
        return
    if config.stash[_TALLY].untested() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _untested_section(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash[_TALLY].untested():
        terminalreporter.write_line(line, red=True, bold=True)


def _oracle_section(terminalreporter: Any) -> None:
    """How many boots the oracle judged, and which it could not, with why:
    loud, because a boot passed over in silence looks like a boot that passed."""
    tests: dict[str, dict[str, object]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            props = dict(getattr(report, "user_properties", ()) or ())
            if getattr(report, "when", None) == "teardown" and "oracle" in props:
                tests[report.nodeid.split("::")[-1]] = props
    lines = oracle_summary(tests.items())
    if not lines:
        return
    terminalreporter.section("ab-harness oracle")
    loud = "could not be judged —" in lines[0] or "broke" in lines[0]
    terminalreporter.write_line(lines[0], red=loud, bold=loud)
    for line in lines[1:]:
        terminalreporter.write_line(line, yellow=True)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(_SUMMARY, []) + list(config.stash.get(_UNREPORTED, {}).values())
    tally = config.stash[_TALLY]
    totals = RunTotals(tally.outcomes(), tally.wall_s(), tally.twice_in_pytest())
    lines = summary_table(rows, config.stash.get(_ACCEL, None), totals)
    if lines:
        terminalreporter.section("ab-harness summary")
        for line in lines:
            terminalreporter.write_line(line)
    runlog = config.stash.get(_RUNLOG, None)
    root = Path(option(config, "ab_results") or "ab-results").resolve()
    if runlog is not None and (root / runlog.run_id / "report.html").is_file():
        terminalreporter.write_line(f"ab-harness report: {root / runlog.run_id / 'report.html'}")
    _oracle_section(terminalreporter)
    _untested_section(terminalreporter, config)
    cells = [Cell(scenario_of(r.scenario, r.target), r.target, r.outcome) for r in rows]
    matrix = matrix_table(cells)
    if matrix:
        terminalreporter.section("ab-harness matrix: scenarios x targets")
        for line in matrix:
            terminalreporter.write_line(line)
