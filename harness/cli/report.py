"""``ab-harness report RESULTS_DIR``: one static HTML file for a run.

RESULTS_DIR is a run folder (``ab-results/<run-id>``) or a results folder,
whose ``latest`` run is reported. The file goes into the run folder
(``report.html``) unless --out names another place; its evidence links are
relative to wherever it is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_report_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = subparsers.add_parser(
        "report", help="write one static HTML report of a run (tests, boots, timelines, evidence)"
    )
    report.add_argument(
        "results", type=Path, help="a run folder, or a results folder (its latest run)"
    )
    report.add_argument("--out", type=Path, help="HTML file to write (default RUN/report.html)")
    report.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from harness.report.html import write_report
    from harness.report.runs import resolve_run

    run = resolve_run(args.results)
    out = write_report(run, args.out.resolve() if args.out else None)
    print(f"report: {out}")
    return 0
