"""Test helper: run ``mender-artifact read`` and parse its text into inspect's JSON shape.

This is the second opinion the reader is checked against: Debian's
mender-artifact (3.9) reads the artifact itself and prints a text report;
this module only turns that text into the same keys as
``ab-harness artifact inspect`` so tests can compare field by field.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

_SIGNATURES = {
    "signed and verified correctly": (True, "valid"),
    "signed; verification using provided key failed": (True, "invalid"),
    "signed but no key for verification provided": (True, "unchecked"),
    "no signature": (False, None),
}


def mender_read(path: Path, key: Path | None = None) -> dict[str, Any]:
    """``mender-artifact read [-k key] path``, parsed; raises if the tool fails."""
    argv = ["mender-artifact", "read", *(["-k", str(key)] if key else []), str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise MenderReadFailed(done.returncode, (done.stderr + done.stdout).strip())
    return parse_read(done.stdout)


class MenderReadFailed(Exception):
    """mender-artifact read exited non-zero (e.g. on a tampered artifact)."""

    def __init__(self, status: int, output: str) -> None:
        super().__init__(f"mender-artifact read exit {status}: {output[-300:]}")
        self.status = status
        self.output = output


def _bracket_list(text: str) -> list[str]:
    inner = text.strip().strip("'").strip()
    assert inner.startswith("[") and inner.endswith("]"), text
    # devices print as '[a b]', depends as [a, b]
    return [item for item in re.split(r"[,\s]+", inner[1:-1]) if item]


def parse_read(text: str) -> dict[str, Any]:
    """The fields of one ``mender-artifact read`` report."""
    head, _, updates = text.partition("\nUpdates:\n")
    result: dict[str, Any] = {"state_scripts": [], "payloads": []}
    lines = head.splitlines()
    for number, line in enumerate(lines):
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key == "Name":
            result["name"] = value
        elif key == "Format":
            result["format"] = value
        elif key == "Version":
            result["version"] = int(value)
        elif key == "Signature":
            found = [v for k, v in _SIGNATURES.items() if value.startswith(k)]
            assert len(found) == 1, f"unknown signature line: {value}"
            result["signed"], result["signature"] = found[0]
        elif key == "Compatible devices":
            result["device_types"] = _bracket_list(value)
        elif key == "Provides group":
            result["provides_group"] = value
        elif key == "Depends on one of artifact(s)":
            result["depends_artifacts"] = _bracket_list(value)
        elif key == "Depends on one of group(s)":
            result["depends_groups"] = _bracket_list(value)
        elif line.strip() == "State scripts:":
            result["state_scripts"] = [s.strip() for s in lines[number + 1 :] if s.strip()]
    for block in re.split(r"\n    \d+:\n", "\n" + updates)[1:]:
        result["payloads"].append(_parse_payload(block))
    return result


def _parse_payload(block: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"provides": {}, "depends": {}, "clears_provides": [], "files": []}
    section = ""
    meta_lines: list[str] = []
    for line in block.splitlines():
        stripped = line.strip()
        if line.startswith("\t"):
            if section == "meta":
                meta_lines.append(stripped)
            else:
                key, _, value = stripped.partition(": ")
                payload[section][key] = value
            continue
        key, _, value = stripped.partition(":")
        value = value.strip()
        if key == "Type":
            payload["type"] = value
        elif key in ("Provides", "Depends"):
            section = key.lower()
        elif key == "Clears Provides":
            payload["clears_provides"] = json.loads(value)
        elif key == "Metadata":
            section = "meta"
        elif key == "name":
            payload["files"].append({"name": value})
        elif key == "size":
            payload["files"][-1]["size"] = int(value)
        elif key == "checksum":
            payload["files"][-1]["sha256"] = value
    payload["meta_data"] = json.loads("".join(meta_lines)) if meta_lines else {}
    return payload
