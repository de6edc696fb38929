"""The harness's docstrings are Markdown; autodoc reads reStructuredText.

This extension rewrites each docstring autodoc collects from the Markdown the
harness writes (fenced code, `#` headings, inline code, links, lists, tables)
into the reStructuredText it means, so the API reference renders the same
text the source shows, and a construct it does not know still fails the
`-W` build instead of rendering wrong in silence.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from sphinx.application import Sphinx

FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
BOLD_CODE = re.compile(r"\*\*(`[^`\n]+`)\*\*")
# One pass over both, so a link's own backticks are not read as code.
INLINE = re.compile(
    r"(?<![`\\])`(?P<code>[^`\n]+)`(?!`)|(?<!`)\[(?P<text>[^\]\n]+)\]\((?P<url>[^)\s]+)\)"
)
HARNESS_NAME = re.compile(r"^harness(\.\w+)+(\(\))?$")
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+")


def _inline(text: str) -> str:
    """Markdown inline markup as reST: code, links."""
    # reST does not nest inline markup: bold code is shown as code.
    text = BOLD_CODE.sub(r"\1", text)
    return INLINE.sub(
        lambda m: _code(m) if m.group("code") is not None else f"`{m['text']} <{m['url']}>`__",
        text,
    )


def _code(match: re.Match[str]) -> str:
    """Inline code; a dotted name in the harness links to its documentation."""
    code = match.group("code")
    if not code.strip():
        return match.group(0)
    if HARNESS_NAME.match(code):
        return f":py:obj:`{code.removesuffix('()')}`"
    return f"``{code}``"


def _table(rows: list[str]) -> list[str]:
    """A Markdown pipe table as a reST list-table."""
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    header, body = (
        cells[0],
        [c for c, row in zip(cells[1:], rows[1:], strict=True) if not TABLE_RULE.match(row)],
    )
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *body]:
        for i, cell in enumerate(row):
            out.append(("   * - " if i == 0 else "     - ") + (_inline(cell) or " "))
    return [*out, ""]


def _starts_indented_code(line: str, previous: str, rest: list[str]) -> bool:
    """A blank line, then a block indented four spaces under a plain paragraph:
    Markdown's indented code block (reST needs `::` to make it literal)."""
    if (
        line.strip()
        or not previous.strip()
        or previous.startswith(" ")
        or LIST_ITEM.match(previous)
    ):
        return False
    following = next((r for r in rest if r.strip()), "")
    return following.startswith("    ") and not previous.rstrip().endswith("::")


def markdown_to_rst(lines: list[str]) -> list[str]:
    """Docstring lines written in Markdown, as reStructuredText lines."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence:
            indent, lang = fence.group(1), fence.group(2) or "text"
            block: list[str] = []
            i += 1
            while i < len(lines) and not FENCE.match(lines[i]):
                block.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
                i += 1
            i += 1  # the closing fence
            out += ["", f"{indent}.. code-block:: {lang}", ""]
            out += [f"{indent}   {b}" if b.strip() else "" for b in block]
            out.append("")
            continue
        heading = HEADING.match(line)
        if heading and not line.startswith(" "):
            out += ["", f".. rubric:: {_inline(heading.group(2))}", ""]
            i += 1
            continue
        if line.lstrip().startswith("|") and i + 1 < len(lines) and TABLE_RULE.match(lines[i + 1]):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(lines[i])
                i += 1
            out += ["", *_table(rows)]
            continue
        # Markdown lets a list start right under a paragraph line; reST needs a blank line.
        previous = out[-1] if out else ""
        if _starts_indented_code(line, previous, lines[i + 1 :]):
            out += ["", "::"]
        if (
            LIST_ITEM.match(line)
            and previous.strip()
            and not LIST_ITEM.match(previous)
            and not previous.startswith(" ")
        ):
            out.append("")
        out.append(_inline(line))
        i += 1
    return out


def _process(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    lines[:] = markdown_to_rst(lines)


class _Elided:
    """A default too long to show (a compiled regex, a table): shown as `...`."""

    def __repr__(self) -> str:
        return "..."


def _short_defaults(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    """A dataclass's generated `__init__` shows each default's repr; a default
    that is a whole table of regexes is elided, so the signature stays one line."""
    if not signature or len(signature) < 200 or what != "class":
        return None
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = [
        p.replace(default=_Elided())
        if p.default is not p.empty and len(repr(p.default)) > 40
        else p
        for p in sig.parameters.values()
    ]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty)), None


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", _process)
    app.connect("autodoc-process-signature", _short_defaults)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
