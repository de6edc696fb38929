"""Reports: what a person reads after a run.

- `evidence`: one test's evidence folder (serial logs, env snapshots, boots.json,
  the timeline) and its Allure attachments;
- `timeline`, `png`: the boot timeline picture (SVG, and a PNG copy);
- `runs`: one folder per run under the results folder, `latest`, pruning;
- `junit_allure`: JUnit properties, Allure labels, environment and categories;
- `runlog`, `html`: the run's tests as data, and the static HTML report;
- `summary`: the one-screen summary at the end of a run.
"""

from harness.report.evidence import (
    Evidence,
    boot_facts,
    check_results_folder,
    format_boot,
    safe_name,
)
from harness.report.summary import ScenarioSummary, summary_table

__all__ = [
    "Evidence",
    "ScenarioSummary",
    "boot_facts",
    "check_results_folder",
    "format_boot",
    "safe_name",
    "summary_table",
]
