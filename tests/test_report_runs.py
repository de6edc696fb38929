"""Run folders, run.json, JUnit properties and Allure categories, seen from
outside through inner pytest runs (pytester). No QEMU: the inner tests use
the `evidence` fixture alone, or raise the harness's own errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main as cli_main
from harness.report import Evidence
from harness.report.runs import RUN_ID, new_run_id, prune, run_folders

EVIDENCE_TESTS = """
    import pytest

    def test_writes_evidence(evidence):
        evidence.event("hello from the test")

    @pytest.mark.parametrize("n", [1, 2, 3])
    def test_more_evidence(evidence, n):
        evidence.event(f"number {n}")
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:labgrid", "-p", "no:cacheprovider", *args,
                                         timeout=120)  # fmt: skip


def runs_of(results: Path) -> list[str]:
    return [p.name for p in run_folders(results)]


def test_each_run_gets_a_folder_latest_points_at_the_newest_and_old_ones_go(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_ev=EVIDENCE_TESTS)
    results = pytester.path / "ab-results"
    stranger = results / "my-notes"  # not a run folder: never touched
    stranger.mkdir(parents=True)

    names = []
    for _ in range(3):
        assert run(pytester, "-k", "writes", "--ab-keep-runs=2").ret == 0
        names.append(os.readlink(results / "latest"))

    assert len(set(names)) == 3
    assert all(RUN_ID.match(n) for n in names)
    assert runs_of(results) == names[1:]  # the oldest went, the newest two stay
    assert stranger.is_dir()
    test_folder = results / "latest" / "test_ev.py-test_writes_evidence"
    assert "hello from the test" in (test_folder / "timeline.txt").read_text()
    assert (test_folder / "timeline.svg").read_text().startswith("<svg")
    run_json = json.loads((results / "latest" / "run.json").read_text())
    assert run_json["run_id"] == names[-1]
    assert [t["nodeid"] for t in run_json["tests"]] == ["test_ev.py::test_writes_evidence"]
    assert (results / "latest" / "report.html").is_file()


def test_a_run_without_evidence_makes_no_folder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")

    assert run(pytester).ret == 0

    assert not (pytester.path / "ab-results").exists()


def test_xdist_workers_share_one_run_folder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ev=EVIDENCE_TESTS)

    result = run(pytester, "-n", "2", f"--junitxml={pytester.path / 'junit.xml'}")

    assert result.ret == 0
    results = pytester.path / "ab-results"
    report = (results / "latest" / "report.html").resolve()
    result.stdout.fnmatch_lines([f"ab-harness report: {report}"])
    assert len(runs_of(results)) == 1
    folders = sorted(p.name for p in (results / "latest").iterdir() if p.is_dir())
    assert folders == [
        "test_ev.py-test_more_evidence_1",
        "test_ev.py-test_more_evidence_2",
        "test_ev.py-test_more_evidence_3",
        "test_ev.py-test_writes_evidence",
    ]
    run_json = json.loads((results / "latest" / "run.json").read_text())
    assert len(run_json["tests"]) == 4
    # The evidence folder is a JUnit property of every test that has one.
    junit = (pytester.path / "junit.xml").read_text()
    evidence = re.findall(r'<property name="evidence" value="([^"]+)"', junit)
    assert sorted(Path(e).name for e in evidence) == folders
    assert {Path(e).parent for e in evidence} == {(results / "latest").resolve()}


def test_run_json_keeps_outcomes_and_error_types(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mixed="""
        import pytest
        from harness.errors import DeviceError

        @pytest.fixture
        def broken_setup(evidence):
            raise DeviceError("the device hung", "see its serial log")

        def test_fails(evidence):
            assert 1 == 2, "one is not two"

        def test_errors(broken_setup):
            pass

        def test_skips(evidence):
            pytest.skip("not today")

        def test_passes(evidence):
            pass
        """
    )

    result = run(pytester)

    assert result.ret == 1
    tests = {
        t["nodeid"].split("::")[1]: t
        for t in json.loads((pytester.path / "ab-results/latest/run.json").read_text())["tests"]
    }
    assert {n: t["outcome"] for n, t in tests.items()} == {
        "test_fails": "failed",
        "test_errors": "error",
        "test_skips": "skipped",
        "test_passes": "passed",
    }
    assert tests["test_fails"]["error_type"] == "AssertionError"
    assert "one is not two" in tests["test_fails"]["message"]
    assert tests["test_errors"]["error_type"] == "DeviceError"
    assert tests["test_passes"]["error_type"] is None
    # The HTML report shows each outcome and why a test did not pass.
    html = (pytester.path / "ab-results/latest/report.html").read_text()
    assert "4 tests: 1 error, 1 failed, 1 passed, 1 skipped; 0 boots" in html
    assert "<pre class='error'>AssertionError: one is not two" in html
    assert "<pre class='error'>DeviceError: the device hung — fix: see its serial log" in html


def test_a_bad_keep_runs_value_is_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ev=EVIDENCE_TESTS)

    result = run(pytester, "--ab-keep-runs=0")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ab-harness: --ab-keep-runs must be a whole number*fix:*"])


CATEGORY_TESTS = """
    import pytest
    from harness.errors import DeviceError, EnvironmentMissing, HarnessConfigError
    from harness.faults.base import FaultNotInjected
    from harness.judge.oracle import ContractViolation, Violation

    def test_config():
        raise HarnessConfigError("target 'x' not found", "give a target name")

    def test_missing_tool():
        raise EnvironmentMissing("qemu-system-aarch64 not found", "apt-get install it")

    def test_assertion():
        assert ["B", "B"] == ["B", "A"], "did not roll back"

    def test_contract():
        raise ContractViolation(
            [Violation(2, "B bootcount=1", "B bootcount=2", "B bootcount=0", ("bootcount",))]
        )

    def test_device():
        raise DeviceError("device hung: boot #3 not ready within 60 s")

    def test_fault():
        raise FaultNotInjected("power-cut-console", "no console line matched")
"""


def category_of(result: dict[str, Any], categories: list[dict[str, Any]]) -> str | None:
    """The first category that matches, as Allure picks it (the whole message must match)."""
    message = (result.get("statusDetails") or {}).get("message", "")
    for category in categories:
        if result["status"] not in category.get("matchedStatuses", []):
            continue
        regex = category.get("messageRegex")
        if regex is None or re.fullmatch(regex, message):
            return str(category["name"]).split(" (")[0]
    return None


def test_allure_categories_tell_infrastructure_from_product_failures(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_cat=CATEGORY_TESTS)
    allure = pytester.path / "allure"

    assert run(pytester, f"--alluredir={allure}").ret == 1

    categories = json.loads((allure / "categories.json").read_text())
    results = [json.loads(p.read_text()) for p in allure.glob("*-result.json")]
    found = {r["name"]: category_of(r, categories) for r in results}
    assert found == {
        "test_config": "Infrastructure failures",
        "test_missing_tool": "Infrastructure failures",
        "test_assertion": "Product failures",
        "test_contract": "Product failures",
        "test_device": "Product failures",
        "test_fault": "Fault not injected",
    }
    environment = (allure / "environment.properties").read_text().splitlines()
    assert f"pytest={pytest.__version__}" in environment
    assert any(line.startswith("run_id=") for line in environment)


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_prune_keeps_the_newest_the_current_and_running_runs(tmp_path: Path) -> None:
    gone = dead_pid()
    ids = [new_run_id(now=1_800_000_000 + n, pid=gone) for n in range(5)]
    alive = new_run_id(now=1_700_000_000, pid=os.getppid())  # older than all, still running
    for run_id in [*ids, alive]:
        (tmp_path / run_id).mkdir()

    removed = prune(tmp_path, keep=2, current=ids[0])

    assert sorted(p.name for p in removed) == ids[1:4]
    assert runs_of(tmp_path) == [alive, ids[0], ids[4]]


def test_report_of_a_folder_that_is_not_there_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["report", str(tmp_path / "nowhere")]) == 1

    err = capsys.readouterr().err.strip()
    assert err == (
        f"ab-harness: error: no results folder at {tmp_path / 'nowhere'} — fix: give the folder "
        "a test run wrote (--ab-results, default ab-results/)"
    )


def test_report_of_a_run_that_wrote_no_run_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run killed before its end (SIGKILL) left evidence but no run.json."""
    run_folder = tmp_path / new_run_id(pid=dead_pid())
    evidence = Evidence(run_folder / "test_x.py-test_killed", title="test_x.py::test_killed")
    evidence.event("powered on")
    evidence.finish(None, ())

    assert cli_main(["report", str(tmp_path)]) == 0

    html = (run_folder / "report.html").read_text()
    assert capsys.readouterr().out.strip() == f"report: {run_folder / 'report.html'}"
    assert "run.json missing: outcomes unknown" in html
    assert "data-nodeid='test_x.py-test_killed' data-outcome='unknown'" in html
    assert "href='test_x.py-test_killed/timeline.svg'" in html
