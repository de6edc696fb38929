"""The pytest plugin: a thin shell of hooks over the harness's modules.

Option precedence, for every ab option: marker > command line > environment
variable > ini file > default (harness.options).

The hooks check the run's targets before any test, parametrize tests over
the targets, settle findings and write the end-of-run summary, matrix and
report. The fixtures are in harness.plugin.fixtures, the lab check in
harness.plugin.lab, what hooks and fixtures share in harness.plugin.state.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

from harness.clients import client_for, with_client
from harness.device.live import LiveTarget
from harness.errors import HarnessError
from harness.fieldcase import fixtures as fieldcase
from harness.images.build_progress import build_progress
from harness.judge import findings
from harness.labgrid_glue import labgrid_env
from harness.machines.tempdirs import remove_stale_tempdirs
from harness.options import DEFAULT_TARGET, OPTIONS, option
from harness.plugin import lab as plugin_lab
from harness.plugin import state
from harness.plugin.interrupts import Interrupts
from harness.plugin.lab import summary_outcome
from harness.plugin.runtargets import item_target, run_targets
from harness.report import (
    Evidence,
    ScenarioSummary,
    check_results_folder,
    finish_run,
    summary_table,
)
from harness.report.runlog import RunLog
from harness.report.runs import new_run_id, parse_keep
from harness.report.summary import RunTotals, oracle_summary
from harness.report.tally import RunTally, skip_reason
from harness.targets.matrix import (
    Cell,
    matrix_table,
    scenario_of,
    target_names,
    unmet,
)
from harness.targets.preflight import preflight
from harness.targets.target import TargetSpec, load_target

pytest_plugins = ["harness.plugin.fixtures"]  # the fixtures, registered with the hooks

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
        "ab_finding(*ids, strict=True): a known finding (harness.judge.findings) this test shows "
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
    config.stash[state.SUMMARY] = []
    config.stash[state.TALLY] = RunTally()
    config.pluginmanager.register(_SummaryCollector(config), "ab-harness-summary")
    # One run folder for the whole run: the xdist controller picks the id.
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and "ab_run_id" in worker_input:
        config.stash[state.RUN_ID] = worker_input["ab_run_id"]
    else:
        config.stash[state.RUN_ID] = new_run_id()
    if worker_input is None:
        config.stash[state.RUNLOG] = RunLog(config.stash[state.RUN_ID])
        try:
            parse_keep(option(config, "ab_keep_runs"))
        except HarnessError as err:
            raise pytest.UsageError(f"ab-harness: {err}") from None
    remove_stale_tempdirs()
    # Ctrl-C and SIGTERM: QEMU killed at the signal, then teardown as usual.
    interrupts = config.stash[state.INTERRUPTS] = Interrupts(config)
    config.pluginmanager.register(interrupts, "ab-harness-interrupts")
    interrupts.install()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker writes into the run folder the controller chose."""
    node.workerinput["ab_run_id"] = node.config.stash[state.RUN_ID]


def pytest_unconfigure(config: pytest.Config) -> None:
    interrupts = config.stash.get(state.INTERRUPTS, None)
    if interrupts is not None:
        interrupts.uninstall()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Check every target the collected tests use, once, before any test runs.

    A configuration error ends the run here as one ``ab-harness: ...`` line
    (a usage error), instead of a traceback in every test that uses it.
    Only targets that tests need are built and checked; an explicitly chosen
    --ab-target (option, env, ini) is always loaded, so a typo is never ignored.
    """
    config = session.config
    images = config.stash.setdefault(state.IMAGES, {})
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

    progress = build_progress(write, state.progress_mode(config))
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
    """The summary's wall time starts with the session, as pytest's own does,
    so the two agree. Under pytest-xdist, check (and build) the targets
    --ab-target names in the controller, before any worker starts: a bad
    target is then one usage line, not a worker that ends mid-collection
    (pytest's INTERNALERROR), and two workers never wait on one image build."""
    config = session.config
    config.stash[state.TALLY].started = time.monotonic()
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
    progress = build_progress(write, state.progress_mode(config))
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    shown = _finding(item, report)
    decisive = report.when == "call" or (report.when == "setup" and report.outcome != "passed")
    # A teardown that fails a passed test (a fault that never fired) makes it an error.
    late = (
        report.when == "teardown"
        and report.failed
        and item.stash.get(state.OUTCOME, "") == "passed"
    )
    # Every test that uses a target gets a row in the summary and the matrix.
    summarised = item_target(item) is not None
    if (decisive or late) and summarised:
        # pytest calls a failure outside the test body an error; so does the summary;
        # the lab or the host failing it is "infra".
        item.stash[state.OUTCOME] = "finding" if shown else summary_outcome(item, report, call)
        if item.stash[state.OUTCOME] == "skipped":  # a lab skip ("infra") is said once, by the lab
            item.stash[state.NOTE] = skip_reason(report)
    if report.when == "teardown" and state.OUTCOME in item.stash:
        # The row rides on the report, so pytest-xdist brings it to the controller.
        target = item_target(item) or ""
        row = {
            "scenario": item.nodeid.split("::")[-1],
            "target": Path(target).stem,
            "target_name": target,
            "outcome": item.stash[state.OUTCOME],
            "boots": item.stash.get(state.BOOTS, 0),
            "seconds": time.monotonic() - item.stash.get(state.STARTED, time.monotonic()),
            "accel": item.config.stash.get(state.ACCEL, None),
            "note": item.stash.get(state.NOTE, ""),
        }
        report.user_properties.append((state.ROW, row))
        item.config.stash.setdefault(state.UNREPORTED, {}).pop(item.nodeid, None)
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
    item.stash[state.STARTED] = time.monotonic()
    return (yield)


class _SummaryCollector:
    """Collects the summary rows from every report, wherever the test ran."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        runlog = self._config.stash.get(state.RUNLOG, None)
        if runlog is not None:
            runlog.add_report(report, skip=state.ROW)
        tally = self._config.stash[state.TALLY]
        tally.add(report)
        for name, row in report.user_properties:
            if name == state.ROW and isinstance(row, dict):
                tally.settle(report.nodeid, row["outcome"], row.get("target_name") or "")
                self._config.stash[state.SUMMARY].append(
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
                    self._config.stash[state.ACCEL] = row["accel"]
        if runlog is not None:  # where reports end (not a worker): the row is no JUnit property
            report.user_properties = [p for p in report.user_properties if p[0] != state.ROW]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Where every report arrived (not an xdist worker): run.json, report.html,
    the Allure environment and categories."""
    config = session.config
    runlog = config.stash.get(state.RUNLOG, None)
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
    if config.stash.get(state.RUNLOG, None) is None:  # an xdist worker: the controller decides
        return
    if config.stash[state.TALLY].untested() and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _untested_section(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash[state.TALLY].untested():
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
    rows = config.stash.get(state.SUMMARY, []) + list(
        config.stash.get(state.UNREPORTED, {}).values()
    )
    tally = config.stash[state.TALLY]
    totals = RunTotals(tally.outcomes(), tally.wall_s(), tally.twice_in_pytest())
    lines = summary_table(rows, config.stash.get(state.ACCEL, None), totals)
    if lines:
        terminalreporter.section("ab-harness summary")
        for line in lines:
            terminalreporter.write_line(line)
    runlog = config.stash.get(state.RUNLOG, None)
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
