"""``header.tar*`` (and ``header-augment.tar*``): what the artifact declares.

The header holds ``header-info`` (payload types, the artifact's own
provides and depends), ``scripts/<State>_<Action>_<NN>`` and one
``headers/NNNN/`` bucket per payload with ``type-info`` and ``meta-data``.
Format version 2 keeps the name and device types directly in
``header-info`` and lists payloads as ``updates``; both are read into one
`Header` value so the rest of the reader does not care which it was.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from harness.artifacts.errors import ArtifactError
from harness.artifacts.streams import BROKEN, decompressed

_BUCKET = re.compile(r"^headers/(\d{4})/([^/]+)$")


@dataclass
class Header:
    """The parsed header; `type_info`/`meta_data` are keyed by payload index."""

    info: dict[str, Any] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)
    type_info: dict[int, dict[str, Any]] = field(default_factory=dict)
    meta_data: dict[int, dict[str, Any]] = field(default_factory=dict)

    def payload_types(self, version: int) -> list[str]:
        key = "updates" if version == 2 else "payloads"
        entries = self.info.get(key) or []
        if not isinstance(entries, list):
            raise ArtifactError(f"header-info: '{key}' is not a list", _REBUILD)
        return [str(e.get("type") or "") if isinstance(e, dict) else "" for e in entries]

    def name(self, version: int) -> str:
        if version == 2:
            return str(self.info.get("artifact_name", ""))
        return str(self.provides().get("artifact_name", ""))

    def device_types(self, version: int) -> tuple[str, ...]:
        if version == 2:
            found = self.info.get("device_types_compatible") or []
        else:
            found = self.depends().get("device_type") or []
        return tuple(str(d) for d in found)

    def provides(self) -> dict[str, Any]:
        return _mapping(self.info.get("artifact_provides"), "header-info: artifact_provides")

    def depends(self) -> dict[str, Any]:
        return _mapping(self.info.get("artifact_depends"), "header-info: artifact_depends")


_REBUILD = "the artifact is damaged or was not written by mender-artifact; rebuild it"


def parse_header(raw: bytes, member: str) -> Header:
    """Parse the (compressed) header tar `raw`, stored in the artifact as `member`."""
    header = Header()
    try:
        with (
            closing(decompressed(io.BytesIO(raw), member)) as stream,
            tarfile.open(fileobj=stream, mode="r|") as tar,
        ):
            for entry in tar:
                if not entry.isfile():
                    continue
                handle = tar.extractfile(entry)
                body = handle.read() if handle else b""
                _take(header, entry.name, body, member)
    except ArtifactError:
        raise
    except BROKEN as err:
        raise ArtifactError(f"{member} is not a readable tar ({err})", _REBUILD) from err
    if not header.info:
        raise ArtifactError(f"{member} has no header-info", _REBUILD)
    return header


def _take(header: Header, name: str, body: bytes, member: str) -> None:
    if name == "header-info":
        header.info = _json(body, f"{member}: header-info")
        return
    if name.startswith("scripts/"):
        header.scripts.append(name.removeprefix("scripts/"))
        return
    bucket = _BUCKET.match(name)
    if bucket is None:
        return  # files older writers added (checksums/, signatures/) carry nothing we report
    index, leaf = int(bucket.group(1)), bucket.group(2)
    if leaf == "type-info":
        header.type_info[index] = _json(body, f"{member}: {name}")
    elif leaf == "meta-data":
        header.meta_data[index] = _json(body, f"{member}: {name}") if body.strip() else {}


def _json(body: bytes, where: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{where} is not JSON ({err})", _REBUILD) from err
    return _mapping(value, where)


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ArtifactError(f"{where} is not a JSON object", _REBUILD)
    return value
