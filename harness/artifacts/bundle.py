"""What a RAUC bundle or an SWUpdate .swu says about itself, as frozen values.

Both updaters sign a description of the update (RAUC's manifest, SWUpdate's
sw-description) with CMS, and name in it the images with their sha256. The
readers (`rauc_bundle`, `swu`) fill these in after hashing every image they
could reach, so an image here was matched against its description unless
the signature was already found invalid. `to_json()` is the shape
``ab-harness artifact inspect`` prints for them, beside Mender's artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.artifacts.model import Signature
from harness.errors import HarnessConfigError

REBUILD = "rebuild it with the updater's own tool, or fetch it again"


class BundleError(HarnessConfigError):
    """The file is not a readable bundle, or its contents do not match its description."""


@dataclass(frozen=True)
class BundleImage:
    """One image the description names: for RAUC its slot class, for SWUpdate
    the device or volume it goes to (`target`); `size` and `sha256` as found
    in the file."""

    name: str
    filename: str
    size: int
    sha256: str
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "filename": self.filename,
            "size": self.size,
            "sha256": self.sha256,
            "target": self.target,
        }


@dataclass(frozen=True)
class Bundle:
    """A bundle's description and the state of its signature.

    `compatible`: RAUC's `compatible` (one string) or SWUpdate's
    `hardware-compatibility` (a list); `signer`: the signer's subject where a
    CA was given and the signature verified."""

    updater: str
    format: str
    version: str | None
    compatible: tuple[str, ...]
    images: tuple[BundleImage, ...]
    signed: bool
    signature: Signature
    signature_problem: str | None = None
    signer: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "updater": self.updater,
            "format": self.format,
            "version": self.version,
            "compatible": list(self.compatible),
            "signed": self.signed,
            "signature": self.signature.value,
            "signature_problem": self.signature_problem,
            "signer": self.signer,
            "images": [image.to_json() for image in self.images],
        }
