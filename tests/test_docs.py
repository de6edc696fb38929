"""`make docs`: the Sphinx site builds with no warning, its API reference covers
every fixture the plugin defines (with its docstring and linked return type),
the errors and the device's conventions; the README stays short and every
relative link in it leads to a file."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.plugin.authoring import fixtures
from harness.targets.target import default_targets_dir
from harness.targets.targetschema import key_reference

REPO = default_targets_dir().parent
DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_LINES = 250

sys.path.insert(0, str(DOCS / "_ext"))
from markdown_docstrings import markdown_to_rst  # noqa: E402


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """The build `make docs` runs (-W: a warning fails it), into `out`, doctrees included."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"),
            *("-d", str(out / ".doctrees"), str(source), str(out / "html")),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    proc = sphinx_build(DOCS, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    return out / "html"


def text_of(page: Path) -> str:
    """A built page's text, tags dropped (highlighted code is split into spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def plugin_fixtures(pytester: pytest.Pytester) -> set[str]:
    """The fixtures pytest itself lists for harness/plugin/fixtures.py (`pytest --fixtures`)."""
    result = pytester.runpytest_subprocess("-p", "no:labgrid", "--fixtures", "-v", timeout=120)
    names: set[str] = set()
    for line in result.outlines:
        match = re.match(r"^(\w+)(?: \[\w+ scope\])? -- .*harness/plugin/fixtures\.py", line)
        if match:
            names.add(match.group(1))
    return names


def test_every_fixture_is_in_the_reference(built: Path, pytester: pytest.Pytester) -> None:
    listed = {f.name for f in fixtures()}
    from_pytest = {n for n in plugin_fixtures(pytester) if not n.startswith("_")}
    assert from_pytest, "pytest --fixtures listed none from harness/plugin/fixtures.py"
    assert listed == from_pytest
    page = (built / "reference" / "api" / "harness.plugin.authoring.html").read_text()
    for fixture in fixtures():
        assert fixture.doc, f"fixture {fixture.name} has no docstring"
        assert f'<span class="pre">{fixture.name}</span>' in page, fixture.name
    # Return types link to their own pages (fields documented there).
    assert 'href="harness.device.boot.html#harness.device.boot.BootSession"' in page
    assert 'href="harness.device.observe.html#harness.device.observe.Observer"' in page


def test_reference_has_errors_conventions_and_imports(built: Path) -> None:
    api = built / "reference" / "api"
    text = text_of(api / "harness.plugin.authoring.html")
    for words in ("read-only", "/data", "from harness.judge.verdict import outcome", "blame"):
        assert words in text, words
    errors = (api / "harness.errors.html").read_text()
    for cls in ("InfrastructureError", "LabUnavailableError", "ProductError", "DeviceError"):
        assert f'id="harness.errors.{cls}"' in errors
    record = (api / "harness.device.bootrecord.html").read_text()
    assert (
        'id="harness.device.bootrecord.BootRecord.running_slot"' in record
    )  # a return type's fields


def test_every_module_of_the_api_index_has_its_page(built: Path) -> None:
    index = (DOCS / "reference" / "api.md").read_text()
    modules = re.findall(r"^api/(harness[\w.]*)$", index, re.MULTILINE)
    assert modules[0] == "harness.plugin.authoring", modules
    for module in modules:
        page = built / "reference" / "api" / f"{module}.html"
        assert f'id="module-{module}"' in page.read_text(), module


def test_the_key_reference_is_the_schemas(built: Path) -> None:
    heading = re.search(r"^# (.+)$", key_reference(), re.MULTILINE)
    assert heading, "key_reference() has no heading"
    title = heading.group(1).replace("`", "")
    assert title in text_of(built / "reference" / "keys.html")


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """-W --keep-going makes a warning (here a link to a page that does not exist) fail."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "conf.py").write_text('extensions = ["myst_parser"]\n')
    (source / "index.md").write_text("# Index\n\nSee [the guide](guide.md).\n")
    proc = sphinx_build(source, tmp_path / "out")
    assert proc.returncode != 0
    assert "guide" in proc.stderr


def test_markdown_docstrings_become_rest() -> None:
    markdown = [
        "# Title",
        "Text with `code`, **`bold code`**, `harness.device.boot.BootSession` and [a link](https://example.org).",
        "- an item",
        "",
        "```python",
        "x = 1",
        "```",
        "",
        "| a | b |",
        "|---|---|",
        "| `1` | 2 |",
        "",
        "Run it like this:",
        "",
        "    run()",
    ]
    rst = "\n".join(markdown_to_rst(markdown))
    assert ".. rubric:: Title" in rst
    assert "``code``" in rst and ":py:obj:`harness.device.boot.BootSession`" in rst
    assert "``bold code``" in rst and "**" not in rst  # reST does not nest inline markup
    assert "`a link <https://example.org>`__" in rst
    assert "example.org>`__.\n\n- an item" in rst  # a list needs a blank line above it in reST
    assert ".. code-block:: python\n\n   x = 1" in rst
    assert ".. list-table::" in rst and "   * - ``1``\n     - 2" in rst
    assert "::\n\n    run()" in rst


def test_the_readme_is_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail into docs/"


def test_every_relative_link_in_the_readme_leads_to_a_file() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text())
    relative = [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:|^#", link)]
    assert relative, "README.md links to no documentation page"
    missing = [link for link in relative if not (REPO / link.split("#")[0]).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
