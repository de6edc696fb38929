"""`make docs`: the API reference builds from the docstrings with no warning,
and covers every fixture the plugin defines (with its docstring and return
type), the errors, and the device's conventions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.authoring import fixtures
from harness.target import default_targets_dir

REPO = default_targets_dir().parent


def doc_modules() -> list[str]:
    """The module list `make docs` documents, read from the Makefile."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(r"^DOC_MODULES\s*:=\s*(.+)$", text, re.MULTILINE)
    assert match, "Makefile has no DOC_MODULES"
    return match.group(1).split()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    pdoc = [sys.executable, "-W", "error", "-m", "pdoc", "--docformat", "markdown"]
    proc = subprocess.run(
        [*pdoc, "-o", str(out), *doc_modules()],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Warn" not in proc.stderr, proc.stderr
    return out


def plugin_fixtures(pytester: pytest.Pytester) -> set[str]:
    """The fixtures pytest itself lists for harness/plugin.py (`pytest --fixtures`)."""
    result = pytester.runpytest_subprocess("-p", "no:labgrid", "--fixtures", "-v", timeout=120)
    names: set[str] = set()
    for line in result.outlines:
        match = re.match(r"^(\w+)(?: \[\w+ scope\])? -- .*harness/plugin\.py", line)
        if match:
            names.add(match.group(1))
    return names


def test_every_fixture_is_in_the_reference(built: Path, pytester: pytest.Pytester) -> None:
    listed = {f.name for f in fixtures()}
    from_pytest = {n for n in plugin_fixtures(pytester) if not n.startswith("_")}
    assert from_pytest, "pytest --fixtures listed none from harness/plugin.py"
    assert listed == from_pytest
    page = (built / "harness" / "authoring.html").read_text()
    for fixture in fixtures():
        assert fixture.doc, f"fixture {fixture.name} has no docstring"
        assert f"<code>{fixture.name}</code>" in page
    # Return types link to their own pages (fields documented there).
    assert 'href="boot.html#BootSession"' in page
    assert 'href="observe.html#Observer"' in page


def test_reference_has_errors_conventions_and_imports(built: Path) -> None:
    page = (built / "harness" / "authoring.html").read_text()
    for words in ("read-only", "/data", "from harness.verdict import outcome", "blame"):
        assert words in page, words
    errors = (built / "harness" / "errors.html").read_text()
    for cls in ("InfrastructureError", "LabUnavailableError", "ProductError", "DeviceError"):
        assert f'id="{cls}"' in errors
    watcher = (built / "harness" / "watcher.html").read_text()
    assert 'id="BootRecord.running_slot"' in watcher  # a return type's fields


def test_a_broken_annotation_fails_the_build(tmp_path: Path) -> None:
    """The -W error the Makefile uses makes pdoc's warnings fail the build."""
    (tmp_path / "badmod.py").write_text('"""m"""\ndef f(x: "NoSuch") -> None:\n    """d"""\n')
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "pdoc", "-o", str(tmp_path / "out"), "badmod"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode != 0
