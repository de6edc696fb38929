"""What a Mender artifact says about itself, as frozen values.

The reader fills these in after every checksum has been compared, so a
value of `Artifact` only exists for an artifact whose contents match its
manifest. `to_json()` is the shape ``ab-harness artifact inspect`` prints.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Signature(enum.Enum):
    """The state of ``manifest.sig`` after reading.

    ``UNCHECKED`` means no key was given (or nothing to check it against);
    ``INVALID`` also covers an unsigned artifact read with a key, because a
    device holding that key would refuse it just the same.
    """

    VALID = "valid"
    INVALID = "invalid"
    UNCHECKED = "unchecked"


@dataclass(frozen=True)
class PayloadFile:
    """One file inside ``data/NNNN.tar*``; `sha256` was computed, then matched."""

    name: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Payload:
    """One entry of ``header-info``'s payload list, with its headers and files."""

    index: int
    type: str
    provides: dict[str, Any] = field(default_factory=dict)
    depends: dict[str, Any] = field(default_factory=dict)
    clears_provides: tuple[str, ...] = ()
    meta_data: dict[str, Any] = field(default_factory=dict)
    files: tuple[PayloadFile, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "provides": self.provides,
            "depends": self.depends,
            "clears_provides": list(self.clears_provides),
            "meta_data": self.meta_data,
            "files": [f.to_json() for f in self.files],
        }


@dataclass(frozen=True)
class Artifact:
    """A whole artifact: identity, compatibility, signature state and payloads."""

    name: str
    format: str
    version: int
    device_types: tuple[str, ...]
    compression: str
    signed: bool
    signature: Signature
    provides: dict[str, Any] = field(default_factory=dict)
    depends: dict[str, Any] = field(default_factory=dict)
    state_scripts: tuple[str, ...] = ()
    payloads: tuple[Payload, ...] = ()
    signature_problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "version": self.version,
            "device_types": list(self.device_types),
            "compression": self.compression,
            "signed": self.signed,
            "signature": self.signature.value,
            "provides": self.provides,
            "depends": self.depends,
            "state_scripts": list(self.state_scripts),
            "payloads": [p.to_json() for p in self.payloads],
        }
