"""Sphinx configuration of the ab-harness documentation.

Pages are Markdown (myst-parser); the API reference is autodoc over the
modules docs/reference/api.md names; the `ab-harness:` key reference
is written at build time from `harness.targets.targetschema.key_reference()`.
Build: `sphinx-build -W --keep-going -b html docs docs/_build/html`
(`make docs`).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path[:0] = [str(REPO), str(DOCS / "_ext")]

from harness.targets.targetschema import key_reference  # noqa: E402

project = "ab-harness"
author = "the ab-harness authors"
copyright = "the ab-harness authors"
release = version = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "markdown_docstrings",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext"]
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]
# Docstrings write `name` for code, as Markdown does.
default_role = "literal"

autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True

html_theme = "alabaster"
html_title = "ab-harness"
html_theme_options = {"description": "A/B updates that roll back, proved", "fixed_sidebar": True}
html_show_sourcelink = False


def _write(page: Path, text: str) -> None:
    """Write a generated page only when it changed (an incremental build then reads
    only what changed), through a rename, so two builds at once never read half a page."""
    if page.exists() and page.read_text() == text:
        return
    partial = page.with_name(f".{page.name}.{os.getpid()}")
    partial.write_text(text)
    partial.replace(page)


def _write_key_reference() -> None:
    """docs/reference/keys.md, from the schema the harness validates targets with."""
    _write(DOCS / "reference" / "keys.md", key_reference())


_write_key_reference()

# The API reference: docs/reference/api.md lists the modules (in the order data
# flows through the harness, harness.plugin.authoring first); each gets a page here.
API_INDEX = DOCS / "reference" / "api.md"


def api_modules() -> list[str]:
    """The modules docs/reference/api.md's toctree names, in its order."""
    return re.findall(r"^api/(harness[\w.]*)$", API_INDEX.read_text(), re.MULTILINE)


def _write_api_pages() -> None:
    """docs/reference/api/: one autodoc page per module the index names."""
    folder = DOCS / "reference" / "api"
    folder.mkdir(exist_ok=True)
    # eval-rst: autodoc writes reST, which a MyST directive would read as Markdown.
    pages = {
        f"{module}.md": f"# `{module}`\n\n```{{eval-rst}}\n.. automodule:: {module}\n```\n"
        for module in api_modules()
    }
    for name, text in pages.items():
        _write(folder / name, text)
    for stale in folder.glob("*.md"):
        if stale.name not in pages:
            stale.unlink(missing_ok=True)


_write_api_pages()
