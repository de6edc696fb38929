"""A reader for the libconfig text SWUpdate's sw-description is written in.

Just the grammar sw-description uses (libconfig's manual, "Configuration
Files"): `name = value;` or `name : value;` settings, groups `{ ... }`, lists
`( ... )`, arrays `[ ... ]`, strings (adjacent ones joined), integers
(decimal or 0x hex, optional L), floats, booleans, `#`, `//` and `/* */`
comments. Python's own values come out: dict, list, str, int, float, bool.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(
    r"""\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)L{0,2})
    |(?P<name>[A-Za-z*][-A-Za-z0-9_*]*)
    |(?P<punct>[=:;,{}()\[\]])""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", '"': '"', "\\": "\\"}


class LibconfigError(ValueError):
    """The text is not libconfig; the message names the line."""


def loads(text: str) -> dict[str, Any]:
    """The settings of a libconfig document, as a dict."""
    tokens = _tokens(text)
    parser = _Parser(tokens)
    settings = parser.settings(end=None)
    return settings


def _tokens(text: str) -> list[tuple[str, str, int]]:
    found, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            line = text.count("\n", 0, pos) + 1
            raise LibconfigError(f"line {line}: unexpected {text[pos : pos + 10]!r}")
        kind = match.lastgroup
        if kind is not None:
            found.append((kind, match.group(kind), text.count("\n", 0, pos) + 1))
        pos = match.end()
    return found


class _Parser:
    def __init__(self, tokens: list[tuple[str, str, int]]) -> None:
        self.tokens, self.at = tokens, 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, *want: str) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise LibconfigError(f"the text ends where {' or '.join(want)} was expected")
        if want and token[1] not in want and token[0] not in want:
            raise LibconfigError(
                f"line {token[2]}: {token[1]!r} where {' or '.join(want)} was expected"
            )
        self.at += 1
        return token

    def settings(self, end: str | None) -> dict[str, Any]:
        found: dict[str, Any] = {}
        while (token := self.peek()) is not None and token[1] != end:
            name = self.take("name")[1]
            self.take("=", ":")
            found[name] = self.value()
            if (after := self.peek()) is not None and after[1] in (";", ","):
                self.at += 1
        if end is not None:
            self.take(end)
        return found

    def value(self) -> Any:
        kind, text, line = self.take()
        if kind == "string":
            parts = [_unquote(text)]
            while (more := self.peek()) is not None and more[0] == "string":
                parts.append(_unquote(self.take()[1]))
            return "".join(parts)
        if kind == "number":
            return _number(text)
        if kind == "name" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text == "{":
            return self.settings(end="}")
        if text in ("(", "["):
            return self.items(")" if text == "(" else "]")
        raise LibconfigError(f"line {line}: {text!r} is no value")

    def items(self, end: str) -> list[Any]:
        found = []
        while (token := self.peek()) is not None and token[1] != end:
            found.append(self.value())
            if (after := self.peek()) is not None and after[1] == ",":
                self.at += 1
        self.take(end)
        return found


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1])


def _number(text: str) -> int | float:
    text = text.rstrip("L")
    if text.lower().lstrip("+-").startswith("0x"):
        return int(text, 16)
    return float(text) if any(c in text for c in ".eE") else int(text)
