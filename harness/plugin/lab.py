"""The plugin's session checks: option values, labgrid's conventions, the lab.

Registered by `harness.plugin` at configure time. What it adds to a run:

- every ``--ab-*`` value is checked before anything is collected; a bad
  one is a usage error naming the option, where the value came from and
  what it may be;
- labgrid's options (`harness.labgrid_glue`): ``--lg-env``/``LG_ENV``
  selects the target, ``--lg-coordinator`` the coordinator, conflicts are
  usage errors;
- the lab check (`harness.lab.labcheck`): once per session and board target,
  before any test; a missing part is printed once, and each test that
  needs the board is skipped with that line (pytest folds identical skips
  into one line), counted as ``infra`` in the summary, and the run exits 1:
  a lab that is down is not a green run, nor a product failure;
- an infrastructure error raised inside a test (`errors.blame`) is
  reported as its one line, not as labgrid's traceback.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import HarnessError, LabUnavailableError, blame
from harness.lab.labcheck import check_lab, first_problem, needs_lab
from harness.labgrid_glue import coordinator_option, resolve_labgrid_options
from harness.options import check_all
from harness.plugin.runtargets import item_target
from harness.targets.target import load_target

LAB_PROBLEMS = pytest.StashKey[dict[str, LabUnavailableError | None]]()
LAB_SKIPPED = pytest.StashKey[int]()
LAB_SKIP_REASON = "lab not available"


def usage_error(err: HarnessError) -> pytest.UsageError:
    return pytest.UsageError(f"ab-harness: {' '.join(str(err).split())}")


def configure(config: pytest.Config) -> None:
    """Check options and labgrid's conventions; register the session hooks."""
    try:
        check_all(config)
        lg_target = resolve_labgrid_options(config)
    except HarnessError as err:
        raise usage_error(err) from None
    if lg_target is not None:
        config.option.ab_target = lg_target
    config.stash[LAB_PROBLEMS] = {}
    config.stash[LAB_SKIPPED] = 0
    config.pluginmanager.register(LabSession(config), "ab-harness-lab")


class LabSession:
    """Hooks of the lab check (see the module docstring)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def _target_of(self, item: pytest.Item) -> str | None:
        return item_target(item)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        config = self.config
        if config.option.collectonly:
            return
        problems = config.stash[LAB_PROBLEMS]
        names = {self._target_of(i) for i in session.items if "_ab_live" in _fixtures(i)}
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for name in sorted(n for n in names if n is not None):
            try:
                spec = load_target(name)
            except HarnessError:
                continue  # the plugin's own check reports it
            if not needs_lab(spec):
                continue
            checks = check_lab(spec, coordinator=coordinator_option(config))
            problems[name] = first_problem(checks)
            if reporter is not None:
                for check in checks:
                    if not check.ok:
                        reporter.write_line(f"ab-harness: lab check: {check.line()}")

    # Not tryfirst: a skip the test's own markers ask for (ab_needs) comes first.
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if "_ab_live" not in _fixtures(item):
            return
        problem = self.config.stash[LAB_PROBLEMS].get(self._target_of(item) or "")
        if problem is not None:
            item.stash[_LAB_SKIP] = True
            pytest.skip(f"{LAB_SKIP_REASON}: {' '.join(str(problem).split())}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Counted from the reports, so a pytest-xdist controller (which runs no
        # test itself) counts its workers' lab skips too.
        if report.skipped and f"{LAB_SKIP_REASON}:" in str(report.longrepr):
            self.config.stash[LAB_SKIPPED] += 1

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        excinfo = call.excinfo
        if excinfo is not None and blame(excinfo.value) == "infrastructure":
            err = excinfo.value
            report.longrepr = f"{type(err).__name__}: {' '.join(str(err).split())}"
        return report

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.config.stash[LAB_SKIPPED] and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        skipped = self.config.stash[LAB_SKIPPED]
        if skipped:
            terminalreporter.write_line(
                f"ab-harness: {skipped} test(s) could not run: the lab is not available "
                "(an infrastructure failure, not a product failure); exit status 1"
            )


_LAB_SKIP = pytest.StashKey[bool]()


def summary_outcome(item: pytest.Item, report: pytest.TestReport, call: Any) -> str:
    """The summary's outcome of a test: ``infra`` when the lab or host failed it
    (a lab skip or an infrastructure error), else pytest's (``error`` for a
    failure outside the test body: in a fixture's setup, or in its teardown,
    e.g. a fault that never fired)."""
    excinfo = getattr(call, "excinfo", None)
    if item.stash.get(_LAB_SKIP, False) or (
        excinfo is not None and blame(excinfo.value) == "infrastructure"
    ):
        return "infra"
    if report.when in ("setup", "teardown") and report.outcome == "failed":
        return "error"
    if hasattr(report, "wasxfail"):  # pytest's xfail marker: not a skip
        return "xfailed" if report.skipped else "xpassed"
    return str(report.outcome)


def _fixtures(item: pytest.Item) -> tuple[str, ...]:
    return tuple(getattr(item, "fixturenames", ()))
