"""The nightly CI files are ready to copy: valid YAML, every `make X` they call
is a target of the Makefile that `make -n` accepts with the same variables,
every target they name exists, the image cache path is the harness's, and
the JUnit, HTML report and evidence they write are what they publish."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.images import default_cache_dir
from harness.lab.labcheck import needs_lab
from harness.targets.target import default_targets_dir, load_target

REPO = default_targets_dir().parent
GITHUB = REPO / ".github" / "workflows" / "nightly.yml"
GITLAB = REPO / ".gitlab-ci.yml"
REPORT = "ab-harness report ab-results/latest --out report.html"


def make_rules() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", text, re.MULTILINE))


def github() -> dict[Any, Any]:
    data = yaml.safe_load(GITHUB.read_text())
    assert isinstance(data, dict)
    return data


def gitlab() -> dict[str, Any]:
    data = yaml.safe_load(GITLAB.read_text())
    assert isinstance(data, dict)
    return data


def fill(pattern: str, line: str, values: dict[str, Any]) -> str:
    """The line with each variable `pattern` matches replaced by its value (if known)."""
    return re.sub(pattern, lambda m: str(values.get(m.group(1), m.group(0))), line)


def github_commands() -> list[str]:
    """Every `run:` line, once per matrix entry, with ${{ matrix.X }} filled in."""
    commands = []
    for job in github()["jobs"].values():
        entries = job.get("strategy", {}).get("matrix", {}).get("include", [{}])
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                commands += [fill(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", line, e) for e in entries]
    return commands


def gitlab_entries(job: dict[str, Any]) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    for group in job.get("parallel", {}).get("matrix", [{}]):
        keys = list(group)
        values = [v if isinstance(v, list) else [v] for v in group.values()]
        entries += [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]
    return entries


def gitlab_commands() -> list[str]:
    commands = []
    for job in gitlab().values():
        if not isinstance(job, dict) or "script" not in job:
            continue
        lines = job.get("before_script", []) + job["script"] + job.get("after_script", [])
        for entry in gitlab_entries(job):
            commands += [fill(r"\$(\w+)", str(line), entry) for line in lines]
    return commands


def make_calls(commands: list[str]) -> list[tuple[list[str], list[str]]]:
    """(targets, VAR=value assignments) of every `make` command."""
    calls = []
    for command in commands:
        words = shlex.split(command)
        if words[:1] == ["make"]:
            rest = words[1:]
            calls.append(([w for w in rest if "=" not in w], [w for w in rest if "=" in w]))
    return calls


@pytest.mark.parametrize("commands", [github_commands, gitlab_commands], ids=["github", "gitlab"])
def test_every_make_call_is_a_makefile_target(commands: Any) -> None:
    calls = make_calls(commands())
    assert {t for targets, _ in calls for t in targets} >= {
        "doctor",
        "nightly-tests",
        "nightly-scenarios",
        "nightly-sweep",
    }
    rules = make_rules()
    for targets, assignments in calls:
        assert targets and set(targets) <= rules, (targets, sorted(rules))
        dry = subprocess.run(
            ["make", "-n", *targets, *assignments],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert dry.returncode == 0, dry.stderr
        for assignment in assignments:
            name, value = assignment.split("=", 1)
            if name == "TARGET":
                assert (REPO / "targets" / f"{value}.yaml").is_file(), value


def test_nightly_parts_cover_make_nightly() -> None:
    """The split runs what `make nightly` runs: tests, scenarios on every QEMU target, the sweep."""
    qemu_targets = {
        p.stem for p in (REPO / "targets").glob("*.yaml") if not needs_lab(load_target(str(p)))
    }
    for commands in (github_commands(), gitlab_commands()):
        calls = make_calls(commands)
        scenario_targets = {
            a.split("=", 1)[1]
            for targets, assignments in calls
            if "nightly-scenarios" in targets
            for a in assignments
            if a.startswith("TARGET=")
        }
        assert scenario_targets == qemu_targets


def test_github_caches_images_and_publishes_results() -> None:
    job = next(iter(github()["jobs"].values()))
    steps = job["steps"]
    cache = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache@"))
    assert cache["with"]["path"] == "~/.cache/ab-harness"
    assert "qemu-images/**" in cache["with"]["key"]
    runs = "\n".join(str(s.get("run", "")) for s in steps)
    assert f".venv/bin/{REPORT}" in runs
    junit = next(s for s in steps if "junit" in str(s.get("uses", "")))
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    paths = upload["with"]["path"].split()
    assert junit["with"]["report_paths"] == "junit.xml" and "junit.xml" in paths
    assert {"report.html", "ab-results/"} <= set(paths)
    for step in (junit, upload, next(s for s in steps if REPORT in str(s.get("run", "")))):
        assert step.get("if") == "always()"  # also when tests failed


def test_gitlab_caches_images_where_the_harness_looks_and_publishes_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = gitlab()
    job = data["nightly"]
    project = Path("/builds/project")
    xdg = data["variables"]["XDG_CACHE_HOME"].replace("$CI_PROJECT_DIR", str(project))
    monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    cache_dir = default_cache_dir().relative_to(project)
    assert [p.rstrip("/") for p in job["cache"]["paths"]] == [str(cache_dir)]
    assert f".venv/bin/{REPORT}" in job["after_script"]
    artifacts = job["artifacts"]
    assert artifacts["when"] == "always" and artifacts["reports"]["junit"] == "junit.xml"
    assert {"junit.xml", "report.html", "ab-results/"} <= set(artifacts["paths"])


@pytest.mark.parametrize("commands", [github_commands, gitlab_commands], ids=["github", "gitlab"])
def test_every_ab_harness_call_parses_with_the_real_command_line(commands: Any) -> None:
    from harness.cli import build_parser

    calls = [shlex.split(c) for c in commands() if c.startswith(".venv/bin/ab-harness ")]
    assert calls
    for words in calls:
        args = build_parser().parse_args(words[1:])  # exits 2 on an unknown command or flag
        assert callable(args.func)
