"""Mender artifacts: read and check them (`read_artifact`), write them (`builder`)."""

from harness.artifacts.errors import ArtifactError
from harness.artifacts.model import Artifact, Payload, PayloadFile, Signature
from harness.artifacts.reader import read_artifact

__all__ = ["Artifact", "ArtifactError", "Payload", "PayloadFile", "Signature", "read_artifact"]
