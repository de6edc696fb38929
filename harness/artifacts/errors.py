"""The one error an artifact can raise: it is not what it claims to be."""

from __future__ import annotations

from harness.errors import HarnessConfigError


class ArtifactError(HarnessConfigError):
    """The file is not a readable Mender artifact, or its contents do not match its manifest.

    The cause always names the file inside the artifact (``data/0000/rootfs.ext4``,
    ``header.tar.gz``) so a tampered or damaged artifact says where it broke.
    """
