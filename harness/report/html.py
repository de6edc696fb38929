"""One static HTML file for a run: every test, its outcome, its boots and
timeline, and links to its evidence. No JavaScript, no server, no Java or
Node: a person opens it from the results folder (or a CI artifact) in any
browser, and the links are relative so the folder can be moved whole.

The tests come from the run's `run.json`; a run that died before writing
it is still reported from its evidence folders, with outcome "unknown".
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from harness.report.runlog import read_run
from harness.report.timeline import TimelineData, timeline_svg

REPORT_NAME = "report.html"
# Files of an evidence folder listed first, in this order; the rest follow by name.
_FIRST = ("timeline.svg", "timeline.png", "timeline.txt", "boots.json", "serial.log")


@dataclass(frozen=True)
class TestEntry:
    """One test as the report shows it."""

    nodeid: str
    outcome: str
    seconds: float | None
    error_type: str | None
    message: str | None
    properties: Mapping[str, str]
    evidence: Path | None


def entries(run: Path) -> tuple[Mapping[str, Any], list[TestEntry]]:
    """The run's header data and its tests, from run.json or, failing that,
    from the evidence folders found in the run folder."""
    data = read_run(run)
    if data is None:
        folders = sorted(p for p in run.iterdir() if (p / "boots.json").is_file())
        return {"run_id": run.name, "note": "run.json missing: outcomes unknown"}, [
            TestEntry(p.name, "unknown", None, None, None, {}, p) for p in folders
        ]
    tests = []
    for t in data.get("tests", []):
        props = t.get("properties") or {}
        folder = Path(props["evidence"]) if props.get("evidence") else None
        if folder is not None and not folder.is_absolute():
            folder = run / folder
        if folder is not None and not folder.is_dir():
            # Moved with the run folder: look for it by name beside the report.
            folder = run / folder.name if (run / folder.name).is_dir() else None
        tests.append(
            TestEntry(
                t["nodeid"],
                t.get("outcome", "unknown"),
                t.get("seconds"),
                t.get("error_type"),
                t.get("message"),
                props,
                folder,
            )
        )
    return data, tests


def write_report(run: Path, out: Path | None = None) -> Path:
    """Write the run's HTML report (default `<run>/report.html`); return its path."""
    out = out or run / REPORT_NAME
    header, tests = entries(run)
    out.write_text(render(header, tests, out.parent))
    return out


def render(header: Mapping[str, Any], tests: Sequence[TestEntry], base: Path) -> str:
    """The report as one HTML document; links are relative to `base`."""
    counts: dict[str, int] = {}
    for t in tests:
        counts[t.outcome] = counts.get(t.outcome, 0) + 1
    boots_total = sum(len(_boots(t.evidence)) for t in tests)
    oracle = _oracle_totals(tests)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tests"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ab-harness run {escape(str(header.get('run_id', '')))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>ab-harness run <span id='run-id'>{escape(str(header.get('run_id', '')))}</span></h1>",
        f"<p id='totals'>{len(tests)} test{'' if len(tests) == 1 else 's'}: "
        f"{escape(summary)}; {boots_total} boots"
        + (f"; started {escape(str(header['started']))}" if header.get("started") else "")
        + (f"; {header['seconds']} s" if header.get("seconds") is not None else "")
        + "</p>",
    ]
    if oracle is not None:
        loud = " class='unjudged'" if "could not be judged: " in oracle else ""
        parts.append(f"<p id='oracle'{loud}>oracle: {escape(oracle)}</p>")
    if header.get("note"):
        parts.append(f"<p class='note'>{escape(str(header['note']))}</p>")
    parts.append(_index(tests))
    parts += [_test(n, t, base) for n, t in enumerate(tests)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _oracle_totals(tests: Sequence[TestEntry]) -> str | None:
    """The line "N boots judged, M could not be judged: test #3 (reason)" over the run,
    from each test's boots.json; None when the oracle judged no boot."""
    judged, unjudged, broke = 0, [], 0
    for test in tests:
        name = test.nodeid.rsplit("::", 1)[-1]
        for boot in _boots(test.evidence):
            verdict = boot.get("oracle") or {}
            if verdict.get("verdict") == "unjudged":
                unjudged.append(f"{name} #{boot.get('index')} ({verdict.get('reason')})")
            elif verdict.get("verdict") in ("ok", "violation"):
                judged += 1
                broke += verdict.get("verdict") == "violation"
    if not judged and not unjudged:
        return None
    text = f"{judged} boots judged, {len(unjudged)} could not be judged"
    text += (": " + ", ".join(unjudged)) if unjudged else ""
    return text + (f"; {broke} broke the contract" if broke else "")


def _index(tests: Sequence[TestEntry]) -> str:
    rows = [
        f"<tr class='{escape(t.outcome)}'><td><a href='#t{n}'>{escape(t.nodeid)}</a></td>"
        f"<td class='outcome'>{escape(t.outcome)}</td><td>{len(_boots(t.evidence))}</td>"
        f"<td>{'' if t.seconds is None else f'{t.seconds:.1f}'}</td>"
        f"<td>{escape(t.properties.get('target', ''))}</td></tr>"
        for n, t in enumerate(tests)
    ]
    return (
        "<table id='index'><tr><th>test</th><th>outcome</th><th>boots</th><th>seconds</th>"
        "<th>target</th></tr>" + "".join(rows) + "</table>"
    )


def _test(n: int, test: TestEntry, base: Path) -> str:
    boots = _boots(test.evidence)
    out = [
        f"<section class='test {escape(test.outcome)}' id='t{n}' "
        f"data-nodeid='{escape(test.nodeid)}' data-outcome='{escape(test.outcome)}'>",
        f"<h2><span class='outcome'>{escape(test.outcome)}</span> {escape(test.nodeid)}</h2>",
    ]
    if test.message:
        # pytest's crash line names the type already ("harness.errors.X: ..."): shorten it.
        message = test.message
        head, _, rest = message.partition(": ")
        if test.error_type and head.rsplit(".", 1)[-1] == test.error_type:
            message = f"{test.error_type}: {rest}"
        out.append(f"<pre class='error'>{escape(message)}</pre>")
    if test.properties:
        props = "".join(
            f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>"
            for k, v in test.properties.items()
            if k != "evidence"
        )
        out.append(f"<dl class='props'>{props}</dl>")
    if boots:
        out.append(_boots_table(boots))
    if test.evidence is not None:
        svg = _timeline(test.evidence, boots)
        if svg:
            out.append(f"<div class='timeline'>{svg}</div>")
        out.append(_links(test.evidence, base))
    out.append("</section>")
    return "\n".join(out)


def _boots(folder: Path | None) -> list[Mapping[str, Any]]:
    if folder is None:
        return []
    try:
        rows = json.loads((folder / "boots.json").read_text())
    except (OSError, ValueError):
        return []
    return rows if isinstance(rows, list) else []


def _boots_table(boots: Sequence[Mapping[str, Any]]) -> str:
    head = (
        "<tr><th>boot</th><th>at (s)</th><th>slot chosen</th><th>bootcount</th>"
        "<th>upgrade_available</th><th>health</th><th>running</th><th>ended</th>"
        "<th>oracle</th></tr>"
    )
    rows = []
    for b in boots:
        loader = b.get("bootloader") or {}
        ua = loader.get("upgrade_available")
        ended = (
            f"shell after {b['seconds_to_ready']:.1f} s"
            if b.get("seconds_to_ready") is not None
            else (b.get("failure") or "no shell (record cut short)")
        )
        running = f"{b.get('running_slot') or ''} v{b['version']}" if b.get("version") else ""
        rows.append(
            f"<tr class='boot' data-slot='{escape(str(loader.get('slot') or ''))}'>"
            f"<td>#{b.get('index')}</td><td>{float(b.get('started_s') or 0):.2f}</td>"
            f"<td>{escape(str(loader.get('slot') or '?'))}</td>"
            f"<td>{'' if loader.get('bootcount') is None else loader['bootcount']}</td>"
            f"<td>{'' if ua is None else int(bool(ua))}</td>"
            f"<td class='health {escape(str(b.get('health') or ''))}'>"
            f"{escape(str(b.get('health') or '-'))}</td>"
            f"<td>{escape(running)}</td><td>{escape(ended)}</td>{_verdict_cell(b)}</tr>"
        )
    return f"<table class='boots'>{head}{''.join(rows)}</table>"


def _verdict_cell(boot: Mapping[str, Any]) -> str:
    verdict = boot.get("oracle") or {}
    word = {"ok": "ok", "violation": "VIOLATION", "unjudged": "COULD NOT BE JUDGED"}
    shown = word.get(str(verdict.get("verdict")), "-")
    return (
        f"<td class='oracle {escape(str(verdict.get('verdict') or ''))}' "
        f"title='{escape(str(verdict.get('reason') or ''))}'>{shown}"
        + (f": {escape(str(verdict['reason']))}" if verdict.get("verdict") == "unjudged" else "")
        + "</td>"
    )


def _timeline(folder: Path, boots: Sequence[Mapping[str, Any]]) -> str:
    svg_file = folder / "timeline.svg"
    try:
        svg = svg_file.read_text()
    except OSError:
        if not boots:
            return ""
        svg = timeline_svg(TimelineData.read(folder))
    # Inline: the picture is part of the page, without a second request.
    return svg.split("?>", 1)[-1] if svg.startswith("<?xml") else svg


def _links(folder: Path, base: Path) -> str:
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    order = {name: n for n, name in enumerate(_FIRST)}
    files.sort(key=lambda p: (order.get(p.name, len(order)), p.name))
    links = "".join(
        f"<li><a href='{escape(_rel(p, base))}'>{escape(p.name)}</a></li>" for p in files
    )
    return (
        f"<p class='evidence'>evidence: <a href='{escape(_rel(folder, base))}/'>"
        f"{escape(folder.name)}</a></p><ul class='files'>{links}</ul>"
    )


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


_CSS = """
body { font-family: DejaVu Sans, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.05em; margin-bottom: .3em; }
table { border-collapse: collapse; margin: .4em 0; font-size: .9em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
.passed .outcome { color: #2e7d32; } .failed .outcome, .error .outcome { color: #c62828; }
.skipped .outcome, .unknown .outcome { color: #757575; }
section.test { border-top: 2px solid #ddd; padding-top: .5em; margin-top: 1.2em; }
pre.error { background: #fdecea; padding: .5em; white-space: pre-wrap; }
dl.props { display: grid; grid-template-columns: max-content auto; gap: 0 1em; font-size: .85em; }
dl.props dt { font-weight: bold; } dl.props dd { margin: 0; }
td.health.pass { background: #c8e6c9; } td.health.fail { background: #ffcdd2; }
td.oracle.violation, td.oracle.unjudged, p.unjudged { background: #ffe0b2; font-weight: bold; }
ul.files { columns: 3; font-size: .85em; }
.timeline svg { max-width: 100%; height: auto; }
"""
