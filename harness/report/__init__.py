"""Reports: what a person reads after a run.

- `evidence`: one test's evidence folder (serial logs, env snapshots, boots.json,
  the timeline) and its Allure attachments;
- `timeline`, `png`: the boot timeline picture (SVG, and a PNG copy);
- `runs`: one folder per run under the results folder, `latest`, pruning;
- `junit_allure`: JUnit properties, Allure labels, environment and categories;
- `runlog`, `html`: the run's tests as data, and the static HTML report;
- `summary`: the one-screen summary at the end of a run.
"""

from pathlib import Path

from harness.report.evidence import (
    Evidence,
    boot_facts,
    check_results_folder,
    format_boot,
    safe_name,
)
from harness.report.html import write_report
from harness.report.junit_allure import run_environment, write_allure_extras
from harness.report.runlog import RunLog
from harness.report.summary import ScenarioSummary, summary_table


def finish_run(root: Path, runlog: RunLog, alluredir: Path | None) -> Path | None:
    """At the end of a run (where every report arrived): run.json and
    report.html into the run folder, if any test wrote evidence (returns the
    report), and the Allure environment and categories."""
    run = root / runlog.run_id
    report = None
    if run.is_dir():
        runlog.write(run)
        report = write_report(run)
    if alluredir is not None:
        extra = {"run_id": runlog.run_id, "results": str(run)}
        tests = [t.properties for t in runlog.tests.values()]
        write_allure_extras(alluredir, run_environment(tests, extra))
    return report


__all__ = [
    "Evidence",
    "ScenarioSummary",
    "boot_facts",
    "check_results_folder",
    "finish_run",
    "format_boot",
    "safe_name",
    "summary_table",
]
